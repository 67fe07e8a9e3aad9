// CPU per message on the SMTP DATA path without sockets or a store (issue 21): a benchmark
// Delta Chat-like PGP/MIME message (scripts/bench/messages.ts) goes through readData (end of data,
// dot-unstuffing, line checks) in socket-sized chunks, and what it passes on goes to the
// encryption gate in the intake's 16 KiB slices, as MessageIntake feeds it; then the verdict.
// Prints the median CPU µs per message over many rounds, per message size and chunk size.
//
//   scripts/deno run -A scripts/bench/data_path.ts [--sizes 2k,100k] [--chunks 16384,65536,1000]
//                                                  [--seconds 2] [--json]

import process from "node:process";
import { parseArgs } from "node:util";
import { createGate } from "../../src/policy/mod.ts";
import { readData } from "../../src/smtp/data_reader.ts";
import { headFor, messageTemplate } from "./messages.ts";

const SLICE = 16 * 1024;

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

export interface DataPathRow {
  size: string;
  bytes: number;
  chunk: number;
  us_per_msg: number;
  runs: number;
  verdict: string;
}

function parseSize(s: string): number {
  const m = /^(\d+)(k|m)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * (m[2]?.toLowerCase() === "k" ? 1000 : m[2] ? 1_000_000 : 1);
}

/** One message through readData and the gate; the verdict kind or reason. */
async function once(chunks: Uint8Array[]): Promise<string> {
  let at = 0;
  const source = {
    readChunk: () => Promise.resolve(at < chunks.length ? chunks[at++] : null),
    unread: (_: Uint8Array) => {},
  };
  const gate = createGate({
    direction: "outgoing",
    mailFrom: "alice@bench.localhost",
    recipients: ["bob@bench.localhost"],
  });
  const r = await readData(source, { maxBytes: 30_000_000, maxLineBytes: 8192 }, {
    write(bytes, text) {
      for (let i = 0; i < bytes.length; i += SLICE) {
        gate.push(bytes.subarray(i, i + SLICE), text?.slice(i, i + SLICE));
      }
      return Promise.resolve();
    },
    overflow: () => Promise.resolve(),
  });
  if (!r || r.badLineEnding || r.longLine || r.tooLarge) throw new Error("DATA refused");
  const v = gate.end();
  return v.accept ? v.kind : v.reason;
}

export async function dataPathBench(
  sizes: string[],
  chunks: number[],
  seconds: number,
): Promise<DataPathRow[]> {
  const rows: DataPathRow[] = [];
  for (const size of sizes) {
    const t = await messageTemplate(parseSize(size));
    const head = headFor(t, "alice@bench.localhost", "bob@bench.localhost");
    const wire = new Uint8Array(head.length + t.smtpBody.length);
    wire.set(head);
    wire.set(t.smtpBody, head.length);
    for (const chunk of chunks) {
      // Buffers of their own, as socket reads hand over (cut once: the socket's allocations
      // are not this path's).
      const reads: Uint8Array[] = [];
      for (let at = 0; at < wire.length; at += chunk) reads.push(wire.slice(at, at + chunk));
      let verdict = "";
      const deadline = performance.now() + seconds * 1000 / 4;
      while (performance.now() < deadline) verdict = await once(reads); // warm-up
      // Batches of messages, timed per batch: the median batch's time per message.
      const batch = Math.max(1, Math.round(2_000_000 / wire.length));
      const times: number[] = [];
      const end = performance.now() + seconds * 1000;
      while (performance.now() < end || times.length < 5) {
        // CPU time of the process, not wall time: on a shared machine the wall clock mostly
        // measures the other tenants (one thread runs here; GC helpers count too).
        const c0 = cpuUs();
        for (let i = 0; i < batch; i++) verdict = await once(reads);
        times.push((cpuUs() - c0) / batch);
      }
      times.sort((a, b) => a - b);
      rows.push({
        size,
        bytes: wire.length,
        chunk,
        us_per_msg: Math.round(times[times.length >> 1] * 10) / 10,
        runs: times.length * batch,
        verdict,
      });
    }
  }
  return rows;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sizes: { type: "string", default: "2k,100k" },
      chunks: { type: "string", default: "16384,65536,1000" },
      seconds: { type: "string", default: "2" },
      json: { type: "boolean", default: false },
    },
  });
  const rows = await dataPathBench(
    values.sizes.split(","),
    values.chunks.split(",").map(Number),
    Number(values.seconds),
  );
  if (values.json) console.log(JSON.stringify(rows));
  else {
    console.log("size   bytes     chunk   µs/msg   messages  verdict");
    for (const r of rows) {
      console.log(
        `${r.size.padEnd(6)} ${String(r.bytes).padStart(7)}  ${String(r.chunk).padStart(6)}  ` +
          `${String(r.us_per_msg).padStart(7)}  ${String(r.runs).padStart(8)}  ${r.verdict}`,
      );
    }
  }
}
