// Request parsing for the admin API: a JSON object body and typed parameters, each failure a 400
// with a message naming the parameter.

import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";

const MAX_BODY_BYTES = 64 * 1024;

export function badRequest(message: string): HTTPException {
  return new HTTPException(400, { message });
}

/** The JSON object in the body; {} for an empty body. */
export async function readJson(c: Context): Promise<Record<string, unknown>> {
  if (Number(c.req.header("content-length") ?? 0) > MAX_BODY_BYTES) {
    throw new HTTPException(413, { message: "request body too large" });
  }
  // Read at most MAX_BODY_BYTES bytes, whatever Content-Length claims (or omits).
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = c.req.raw.body?.getReader();
  while (reader) {
    let piece: ReadableStreamReadResult<Uint8Array>;
    try {
      piece = await reader.read();
    } catch (err) {
      // The client went away mid-body: its mistake, not the relay's (no 500, nothing logged).
      throw new HTTPException(400, { message: "request body was cut off", cause: err });
    }
    const { done, value } = piece;
    if (done) break;
    size += value.length;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      throw new HTTPException(413, { message: "request body too large" });
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw new HTTPException(400, { message: "request body is not UTF-8", cause: err });
  }
  if (text.trim() === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new HTTPException(400, { message: "invalid JSON body", cause: err });
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest("JSON body must be an object");
  }
  return body as Record<string, unknown>;
}

export function optionalString(
  body: Record<string, unknown>,
  key: string,
  maxLength = 1000,
): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw badRequest(`"${key}" must be a string`);
  if (v.length > maxLength) throw badRequest(`"${key}" must be at most ${maxLength} characters`);
  return v;
}

export function requiredString(
  body: Record<string, unknown>,
  key: string,
  maxLength = 1000,
): string {
  const v = optionalString(body, key, maxLength);
  if (v === undefined || v.trim() === "") throw badRequest(`"${key}" is required`);
  return v;
}

/** A number from JSON or a query string, checked against bounds; `fallback` when absent. */
export function numberParam(
  raw: unknown,
  name: string,
  options: { min: number; max: number; integer?: boolean; fallback?: number },
): number | undefined {
  if (raw === undefined || raw === null || raw === "") return options.fallback;
  const n = typeof raw === "number"
    ? raw
    : typeof raw === "string" && /^-?\d+(\.\d+)?$/.test(raw)
    ? Number(raw)
    : NaN;
  if (!Number.isFinite(n) || (options.integer !== false && !Number.isInteger(n))) {
    throw badRequest(`"${name}" must be ${options.integer !== false ? "an integer" : "a number"}`);
  }
  if (n < options.min || n > options.max) {
    throw badRequest(`"${name}" must be between ${options.min} and ${options.max}, got ${n}`);
  }
  return n;
}

/** true/false from JSON booleans or the strings the settings accept. */
export function booleanParam(raw: unknown, name: string): boolean | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === "boolean") return raw;
  if (raw === "true" || raw === "false") return raw === "true";
  throw badRequest(`"${name}" must be true or false`);
}

/** A positive integer path parameter (queue ids). */
export function idParam(c: Context, name = "id"): number {
  return numberParam(c.req.param(name), name, { min: 1, max: Number.MAX_SAFE_INTEGER })!;
}
