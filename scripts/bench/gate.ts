// The gate's cost bound (issue 15): reading and judging a worst-case message at the size limit
// must cost at most about 2× its size in memory and never block the event loop noticeably.
// Each message is pushed in 64 KiB pieces with a macrotask between them, as socket reads arrive;
// measured: the longest single push (the longest stall it causes), end(), the whole time, and
// the growth of heap + external memory over the message's own bytes (peak while reading, and
// what stays with the verdict and the structure). The whole-buffer checkIncoming() is timed too.
//
//   scripts/deno run -A --v8-flags=--expose-gc scripts/bench/gate.ts [--size BYTES] [--piece BYTES]
//                                                                    [--json]

import { parseArgs } from "node:util";
import { checkIncoming, createGate } from "../../src/policy/mod.ts";
import { armor, concat, packet } from "../../src/policy/testdata/one_reading_cases.ts";

export interface GateCase {
  name: string;
  bytes: number;
  longest_push_ms: number;
  end_ms: number;
  total_ms: number;
  whole_buffer_ms: number;
  peak_growth_mb: number;
  retained_growth_mb: number;
  growth_ratio: number;
  verdict: string;
}

const enc = new TextEncoder();
/** Piece size pushed at once (64 KiB: a socket read; the delivery path feeds 16 KiB slices). */
let PIECE = 64 * 1024;

function repeatTo(head: string, unit: string, tail: string, size: number): Uint8Array {
  const h = enc.encode(head), u = enc.encode(unit), t = enc.encode(tail);
  const n = Math.max(0, Math.floor((size - h.length - t.length) / u.length));
  const out = new Uint8Array(h.length + n * u.length + t.length);
  out.set(h, 0);
  for (let i = 0; i < n; i++) out.set(u, h.length + i * u.length);
  out.set(t, h.length + n * u.length);
  return out;
}

const HEAD = "From: <alice0001@relay.test>\r\nTo: <bobby0001@relay.test>\r\nSubject: [...]\r\n" +
  "MIME-Version: 1.0\r\n";

/** The worst cases: many tiny parts, many fields, boundary-like lines, one line, a big payload. */
export function worstCases(size: number): { name: string; build: () => Uint8Array }[] {
  const mixed = HEAD + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n';
  return [
    {
      name: "empty parts (2.1 MB)",
      build: () => repeatTo(mixed, "--b\r\n\r\n", "--b--\r\n", 2_100_000),
    },
    { name: "empty parts", build: () => repeatTo(mixed, "--b\r\n\r\n", "--b--\r\n", size) },
    { name: "nested multiparts", build: () => nested(size) },
    { name: "header fields", build: () => repeatTo(HEAD, "X-A: b\r\n", "\r\nx\r\n", size) },
    {
      name: "boundary-prefix lines",
      build: () => repeatTo(mixed + "--b\r\n\r\n", "--bx\r\n", "--b--\r\n", size),
    },
    { name: "one long line", build: () => repeatTo(HEAD + "\r\n", "y", "", size) },
    { name: "encrypted payload", build: () => bigEncrypted(size) },
  ];
}

function nested(size: number): Uint8Array {
  let head = HEAD;
  for (let i = 0; i < 60; i++) {
    head += `Content-Type: multipart/mixed; boundary="n${i}"\r\n\r\n--n${i}\r\n`;
  }
  return repeatTo(head + "\r\n", "--n59\r\n\r\n", "", size);
}

function bigEncrypted(size: number): Uint8Array {
  // PKESK then one SEIPD with a five-octet length filling the size limit (base64: 4/3).
  const body = Math.floor((size - 2000) * 3 / 4) - 200;
  const seipd = new Uint8Array(6 + body);
  seipd[0] = 0xc0 | 18;
  seipd[1] = 255;
  new DataView(seipd.buffer).setUint32(2, body);
  const text = armor(concat(packet(1, 60), seipd));
  const b = "18ea8807fd3c06d8_e7262a8cf62d930d";
  return enc.encode(
    HEAD +
      `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="${b}"` +
      `\r\n\r\n--${b}\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n` +
      `--${b}\r\nContent-Type: application/octet-stream\r\n\r\n${text}\r\n--${b}--\r\n`,
  );
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const memory = () => {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
};
const macrotask = () => new Promise((r) => setTimeout(r, 0));

export async function measure(name: string, bytes: Uint8Array): Promise<GateCase> {
  gc();
  gc();
  const base = memory();
  let peak = base;
  const gate = createGate({
    direction: "incoming",
    mailFrom: "alice0001@relay.test",
    recipients: ["bobby0001@relay.test"],
  });
  let longest = 0;
  const t0 = performance.now();
  for (let i = 0; i < bytes.length; i += PIECE) {
    const p0 = performance.now();
    gate.push(bytes.subarray(i, i + PIECE));
    longest = Math.max(longest, performance.now() - p0);
    peak = Math.max(peak, memory());
    await macrotask();
  }
  const e0 = performance.now();
  const verdict = gate.end();
  const structure = gate.structure();
  const endMs = performance.now() - e0;
  const total = performance.now() - t0;
  peak = Math.max(peak, memory());
  gc();
  const retained = memory() - base;
  const w0 = performance.now();
  checkIncoming({ mailFrom: "alice0001@relay.test", recipients: ["b@x"], message: bytes });
  const whole = performance.now() - w0;
  const mb = (n: number) => Math.round(n / 1e5) / 10;
  return {
    name,
    bytes: bytes.length,
    longest_push_ms: Math.round(longest * 10) / 10,
    end_ms: Math.round(endMs * 10) / 10,
    total_ms: Math.round(total),
    whole_buffer_ms: Math.round(whole),
    peak_growth_mb: mb(peak - base),
    retained_growth_mb: mb(retained),
    growth_ratio: Math.round((peak - base) / bytes.length * 100) / 100,
    verdict: (verdict.accept ? verdict.kind : verdict.reason) +
      ` (${structure.children.length} parts)`,
  };
}

export async function gateBench(size: number): Promise<GateCase[]> {
  await measure("warm-up", worstCases(200_000)[1].build()); // JIT and heap warm-up
  const out: GateCase[] = [];
  for (const c of worstCases(size)) out.push(await measure(c.name, c.build())); // one at a time
  return out;
}

export function gateTable(rows: GateCase[]): string {
  const head =
    "case                     bytes       longest push  end      total    whole-buffer  " +
    "peak growth  kept    growth/size  verdict";
  const lines = rows.map((r) =>
    `${r.name.padEnd(24)} ${String(r.bytes).padStart(10)}  ${
      (r.longest_push_ms + " ms").padStart(11)
    }  ` +
    `${(r.end_ms + " ms").padStart(7)}  ${(r.total_ms + " ms").padStart(7)}  ` +
    `${(r.whole_buffer_ms + " ms").padStart(12)}  ${(r.peak_growth_mb + " MB").padStart(11)}  ` +
    `${(r.retained_growth_mb + " MB").padStart(6)}  ${
      String(r.growth_ratio).padStart(11)
    }  ${r.verdict}`
  );
  return [head, ...lines].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      size: { type: "string" },
      piece: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  if (values.piece) PIECE = Number(values.piece);
  const rows = await gateBench(Number(values.size ?? 31_457_280));
  console.log(values.json ? JSON.stringify(rows) : gateTable(rows));
}
