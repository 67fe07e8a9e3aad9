// The tern process the benchmark and the soak run: the end-to-end tests' process, with logging
// off and the limits raised.

import { startTern, type TernProcess } from "../../tests/support/tern_process.ts";
import { now, pool, sleep } from "./util.ts";
import { Imap } from "./clients.ts";
import { PASS } from "./scenarios.ts";

const dec = new TextDecoder();

/** Limits raised so that the benchmark measures throughput, not the abuse protections. */
export const BENCH_TOML = [
  "max_user_send_per_minute = 1000000",
  "max_user_send_burst_size = 1000000",
  "max_connections_per_ip = 100000",
  "max_connections = 100000",
  "jit_max_per_ip_per_hour = 0",
  // the embedded TURN server (UDP) is not part of the comparison; 0 keeps it off
  "turn_port = 0",
  // the iroh relay scenario measures the relay, not its per-client rate limit
  "iroh_client_rate = 0",
].join("\n");

export type TernBench = TernProcess;

/** A tern process with logging off and the limits raised (tests/support/tern_process.ts). */
export function startTernBench(
  options: {
    dir?: string;
    extraToml?: string;
    ip?: string;
    listen?: Record<string, string>;
    runtimeArgs?: string[];
    /** Run this bundle (dist/tern.js) instead of main.ts (tests/support/tern_process.ts). */
    bundle?: string;
  } = {},
): Promise<TernBench> {
  return startTern([BENCH_TOML, options.extraToml ?? ""].join("\n"), {
    dir: options.dir,
    log: "off",
    ip: options.ip,
    listen: options.listen,
    runtimeArgs: options.runtimeArgs,
    bundle: options.bundle,
  });
}

/** Waits until a TLS IMAP greeting arrives on `port`; returns when it did (performance.now()). */
export async function waitImapsGreeting(port: number, caPem: string, timeoutMs = 30_000) {
  const deadline = now() + timeoutMs;
  while (now() < deadline) {
    try {
      const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caPem] });
      try {
        const buf = new Uint8Array(512);
        const n = await conn.read(buf);
        if (n && dec.decode(buf.subarray(0, n)).startsWith("* OK")) return now();
      } finally {
        conn.close();
      }
    } catch {
      // not yet
    }
    await sleep(5);
  }
  throw new Error("no IMAP greeting");
}

/**
 * A target's ensureUsers for tern: accounts are created on first login (just-in-time), so each
 * new user logs in once over IMAPS on `ip`; later calls skip users already made.
 */
export function jitUsers(
  imapsPort: number,
  caPem: string,
  ip = "127.0.0.1",
): (users: string[]) => Promise<void> {
  const known = new Set<string>();
  return async (users) => {
    const todo = [...new Set(users)].filter((u) => !known.has(u));
    await pool(todo, 8, async (u) => {
      const c = await Imap.connect(imapsPort, caPem, 4096, ip);
      try {
        await c.login(`${u}@[${ip}]`, PASS);
        await c.cmd("LOGOUT");
      } finally {
        c.close();
      }
      known.add(u);
    });
  };
}
