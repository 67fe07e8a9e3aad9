// Structured MIME header values: Content-Type and Content-Disposition with their parameters,
// including RFC 2231 continuations and charset-encoded values.

import { decodeCharset } from "./bytes.ts";
import type { ContentDisposition, ContentType } from "./types.ts";

function skipCfws(s: string, i: number): number {
  for (;;) {
    while (i < s.length && (s[i] === " " || s[i] === "\t" || s[i] === "\r" || s[i] === "\n")) i++;
    if (s[i] !== "(") return i;
    let depth = 0;
    for (; i < s.length; i++) {
      if (s[i] === "\\") i++;
      else if (s[i] === "(") depth++;
      else if (s[i] === ")" && --depth === 0) {
        i++;
        break;
      }
    }
  }
}

const TOKEN_END = /[\s;/()<>@,:\\"[\]?=]/;

function readToken(s: string, i: number): [string, number] {
  const start = i;
  while (i < s.length && !TOKEN_END.test(s[i])) i++;
  return [s.slice(start, i), i];
}

function readQuoted(s: string, i: number): [string, number] {
  let out = "";
  for (i++; i < s.length && s[i] !== '"'; i++) {
    if (s[i] === "\\" && i + 1 < s.length) i++;
    out += s[i];
  }
  return [out, i + 1];
}

interface Section {
  value: string;
  encoded: boolean;
}

const encoder = new TextEncoder();

function percentDecode(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const hex = s.slice(i + 1, i + 3);
    if (s[i] === "%" && /^[0-9a-fA-F]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (s.charCodeAt(i) < 0x80) out.push(s.charCodeAt(i));
    else out.push(...encoder.encode(s[i]));
  }
  return new Uint8Array(out);
}

function joinSections(sections: Map<number, Section>): string {
  const order = [...sections.keys()].sort((a, b) => a - b);
  let charset: string | undefined;
  let encoded = "";
  let plain = "";
  let anyEncoded = false;
  for (const k of order) {
    const sec = sections.get(k)!;
    let v = sec.value;
    if (sec.encoded && k === order[0]) {
      const m = /^([^']*)'[^']*'(.*)$/s.exec(v);
      if (m) {
        charset = m[1] || undefined;
        v = m[2];
      }
    }
    if (sec.encoded) {
      anyEncoded = true;
      encoded += v;
    } else encoded += v.replace(/%/g, "%25");
    plain += v;
  }
  if (!anyEncoded) return plain;
  return decodeCharset(percentDecode(encoded), charset);
}

/** Parameters after the first ";" of a structured value. Lowercased names; first one wins. */
export function parseParams(s: string, from = 0): Record<string, string> {
  const simple = new Map<string, string>();
  const extended = new Map<string, Map<number, Section>>();
  let i = s.indexOf(";", from);
  while (i >= 0 && i < s.length) {
    i = skipCfws(s, i + 1);
    const eq = s.indexOf("=", i);
    const semi = s.indexOf(";", i);
    if (eq < 0 || (semi >= 0 && semi < eq)) {
      i = semi;
      continue;
    }
    const rawName = s.slice(i, eq).trim().toLowerCase();
    i = skipCfws(s, eq + 1);
    let value: string;
    if (s[i] === '"') {
      [value, i] = readQuoted(s, i);
      i = s.indexOf(";", i);
    } else {
      const end = s.indexOf(";", i);
      value = s.slice(i, end < 0 ? s.length : end);
      while (/\([^()]*\)\s*$/.test(value)) value = value.replace(/\s*\([^()]*\)\s*$/, "");
      value = value.trim();
      i = end;
    }
    const m = /^([^*]+)\*(?:(\d+)\*?)?$/.exec(rawName);
    if (!rawName || rawName === "__proto__") continue;
    if (m) {
      const base = m[1].trim();
      const index = Number(m[2] ?? 0);
      const encoded = rawName.endsWith("*");
      if (!extended.has(base)) extended.set(base, new Map());
      const secs = extended.get(base)!;
      if (!secs.has(index)) secs.set(index, { value, encoded });
    } else if (!simple.has(rawName)) simple.set(rawName, value);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of simple) out[k] = v;
  for (const [k, secs] of extended) out[k] = joinSections(secs);
  return out;
}

/** "type/subtype; params", lowercased; undefined when the type is malformed (RFC 2045 §5.2). */
export function parseContentType(value: string): ContentType | undefined {
  let i = skipCfws(value, 0);
  let type: string, subtype: string;
  [type, i] = readToken(value, i);
  i = skipCfws(value, i);
  if (!type || value[i] !== "/") return undefined;
  i = skipCfws(value, i + 1);
  [subtype, i] = readToken(value, i);
  if (!subtype) return undefined;
  return {
    type: type.toLowerCase(),
    subtype: subtype.toLowerCase(),
    params: parseParams(value, i),
  };
}

/** "attachment; filename=…", disposition lowercased; undefined when it has no disposition type. */
export function parseContentDisposition(value: string): ContentDisposition | undefined {
  const [kind, i] = readToken(value, skipCfws(value, 0));
  if (!kind) return undefined;
  return { value: kind.toLowerCase(), params: parseParams(value, i) };
}
