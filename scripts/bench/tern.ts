// Starts a real tern process for the benchmark (like tests/support/tern_process.ts, but with
// logging off, limits raised and start-up timed).

import { now, sleep } from "./util.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

/** Limits raised so that the benchmark measures throughput, not the abuse protections. */
export const BENCH_TOML = [
  'log = "off"',
  "max_user_send_per_minute = 1000000",
  "max_user_send_burst_size = 1000000",
  "max_connections_per_ip = 100000",
  "max_connections = 100000",
  "jit_max_per_ip_per_hour = 0",
  // the embedded TURN server (UDP) is not part of the comparison; 0 keeps it off
  "turn_port = 0",
].join("\n");

export interface TernBench {
  pid: number;
  dir: string;
  dataDir: string;
  listen: Record<string, string>;
  port(name: string): number;
  caPem: string;
  /** performance.now() at spawn. */
  spawnedAt: number;
  /** ms from spawn to the "tern ready" line. */
  readyMs: number;
  stderr(): string;
  stop(): Promise<void>;
}

export async function startTernBench(
  options: { dir?: string; extraToml?: string } = {},
): Promise<TernBench> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "tern-bench-" });
  const listeners = ["smtp", "submission", "submissions", "imap", "imaps", "http", "https"];
  const toml = [
    'domain = "127.0.0.1"',
    `data_dir = "${dir}/data"`,
    BENCH_TOML,
    options.extraToml ?? "",
    "[listen]",
    ...listeners.map((l) => `${l} = "127.0.0.1:0"`),
    'metrics = ""',
  ].join("\n");
  await Deno.writeTextFile(`${dir}/tern.toml`, toml);
  const t0 = now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "serve", "--config", `${dir}/tern.toml`, "--no-banner"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let errText = "";
  const errDone = (async () => {
    for await (const chunk of child.stderr) {
      if (errText.length < 200_000) errText += dec.decode(chunk);
    }
  })();
  const reader = child.stdout.getReader();
  let out = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  let ready: { listen: Record<string, string>; pid?: number } | null = null;
  while (!ready) {
    const { done, value } = await reader.read();
    if (done) break;
    out += dec.decode(value);
    const m = /^tern ready (\{.*\})$/m.exec(out);
    if (m) ready = JSON.parse(m[1]);
  }
  const readyMs = now() - t0;
  clearTimeout(timer);
  const outDone = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const cleanup = async () => {
    if (!options.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  if (!ready) {
    await child.status;
    await errDone;
    await outDone;
    await cleanup();
    throw new Error(`tern did not start:\n${out}\n${errText}`);
  }
  const listen = ready.listen;
  const caPem = await Deno.readTextFile(`${dir}/data/tls/selfsigned-ca.pem`);
  let stopped = false;
  return {
    pid: ready.pid ?? child.pid,
    dir,
    dataDir: `${dir}/data`,
    listen,
    caPem,
    spawnedAt: t0,
    readyMs,
    port(name) {
      const a = listen[name];
      if (!a) throw new Error(`tern listener ${name} is not running`);
      return Number(a.slice(a.lastIndexOf(":") + 1));
    },
    stderr: () => errText,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, 10_000);
      await child.status;
      clearTimeout(killer);
      await errDone;
      await outDone;
      await cleanup();
    },
  };
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
