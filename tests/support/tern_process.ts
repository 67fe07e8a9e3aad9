// A real tern process (`tern serve`) on ephemeral loopback ports with a fresh data directory,
// for end-to-end tests with real clients, and (with logging off) for the benchmark and soak.

import assert from "node:assert/strict";
import { terminate } from "./util.ts";
import { WireClient } from "./wire_client.ts";
import { RUNTIME_ENV } from "../../src/cli/runtime_env.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

export interface TernProcess {
  domain: string;
  /** The run's directory (tern.toml, data/). */
  dir: string;
  dataDir: string;
  /** The generated CA of the self-signed certificate ("" with other certificates). */
  caPem: string;
  /** performance.now() at spawn, and ms from spawn to the "tern ready" line. */
  spawnedAt: number;
  readyMs: number;
  /** Listener name → "host:port". */
  listen: Record<string, string>;
  port(name: string): number;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
  /** SIGKILL, as a crash. */
  kill(): void;
  pid: number;
  /** Settles when the process has exited. */
  status: Promise<Deno.CommandStatus>;
}

export async function startTern(
  extraToml = "",
  options: {
    ip?: string;
    /** Mail domain (default: the IP, an IP relay); a name needs no DNS for local mail. */
    domain?: string;
    listen?: Record<string, string>;
    dir?: string;
    /** Log level (default "debug"; the benchmark uses "off"). */
    log?: string;
    /** Flags for `deno run` before main.ts (the benchmark's --cpu-prof). */
    runtimeArgs?: string[];
    /**
     * The one-file bundle to run instead of the sources (a path, e.g. dist/tern.js from
     * `scripts/compile.ts --bundle-only`): `deno run --no-config` of that file, as shipped.
     */
    bundle?: string;
  } = {},
): Promise<TernProcess> {
  // A given dir is reused (restarts); it is then the caller's to remove.
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "tern-e2e-" });
  const ip = options.ip ?? "127.0.0.1";
  const listeners = ["smtp", "submission", "submissions", "imap", "imaps", "http", "https"];
  const toml = [
    `domain = "${options.domain ?? ip}"`,
    `data_dir = "${dir}/data"`,
    `log = "${options.log ?? "debug"}"`,
    extraToml,
    "[listen]",
    ...listeners.map((l) => `${l} = "${options.listen?.[l] ?? `${ip}:0`}"`),
    `metrics = "${options.listen?.metrics ?? ""}"`,
  ].join("\n");
  await Deno.writeTextFile(`${dir}/tern.toml`, toml);
  // TERN_TEST_BUNDLE=dist/tern.js runs every test's relay from the bundle instead of the sources.
  const bundle = options.bundle ?? Deno.env.get("TERN_TEST_BUNDLE");
  const spawnedAt = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(options.runtimeArgs ?? []),
      ...(bundle ? ["--no-config", bundle] : ["main.ts"]),
      "serve",
      "--config",
      `${dir}/tern.toml`,
      "--no-banner",
    ],
    cwd: ROOT,
    // The environment the systemd unit gives tern (tern install), so tests and the benchmark
    // run what is shipped.
    env: { NO_COLOR: "1", ...RUNTIME_ENV },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let errText = "";
  const errDone = (async () => {
    for await (const chunk of child.stderr) errText += dec.decode(chunk);
  })();
  const reader = child.stdout.getReader();
  let out = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  let ready: { domain: string; listen: Record<string, string> } | null = null;
  while (!ready) {
    const { done, value } = await reader.read();
    if (done) break;
    out += dec.decode(value);
    const m = /^tern ready (\{.*\})$/m.exec(out);
    if (m) ready = JSON.parse(m[1]);
  }
  const readyMs = performance.now() - spawnedAt;
  clearTimeout(timer);
  // Keep draining stdout so the process never blocks on a full pipe.
  const outDone = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  if (!ready) {
    await child.status;
    await errDone;
    await outDone;
    if (!options.dir) await Deno.remove(dir, { recursive: true });
    throw new Error(`tern did not start:\n${out}\n${errText}`);
  }
  const r = ready;
  const caPem = await Deno.readTextFile(`${dir}/data/tls/selfsigned-ca.pem`).catch(() => "");
  let stopped = false;
  return {
    kill: () => child.kill("SIGKILL"),
    pid: child.pid,
    status: child.status,
    domain: r.domain,
    dir,
    dataDir: `${dir}/data`,
    caPem,
    spawnedAt,
    readyMs,
    listen: r.listen,
    port(name) {
      const a = r.listen[name];
      if (!a) throw new Error(`tern listener ${name} is not running`);
      return Number(a.slice(a.lastIndexOf(":") + 1));
    },
    stderr: () => errText,
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(child, 10_000);
      await errDone;
      await outDone;
      if (!options.dir) await Deno.remove(dir, { recursive: true });
    },
  };
}

/** An account from the relay's `/new` (over HTTPS: port 80 only redirects), as the web page does. */
export interface NewAccount {
  email: string;
  password: string;
  dclogin_url: string;
}

export async function newAccount(tern: TernProcess): Promise<NewAccount> {
  using client = Deno.createHttpClient({ caCerts: [tern.caPem] });
  const r = await fetch(`https://${tern.listen.https}/new`, { method: "POST", client });
  if (r.status !== 200) throw new Error(`POST /new answered ${r.status}: ${await r.text()}`);
  return await r.json();
}

/** IMAP and SMTP connections the relay has open now, from its /metrics listener. */
export async function openConnections(tern: TernProcess): Promise<number> {
  const text = await (await fetch(`http://${tern.listen.metrics}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^tern_(?:imap|smtp)_connections\{[^}]*\} (\d+)$/gm)) {
    n += Number(m[1]);
  }
  return n;
}

/** Logs `local` in over 993 with `password` (the first login creates the account). */
export async function imapLogin(
  tern: TernProcess,
  local: string,
  password: string,
): Promise<WireClient> {
  const c = await WireClient.connect(tern.port("imaps"), { tlsCa: tern.caPem });
  assert.match(await c.line(), /^\* OK /);
  const r = await c.cmd("l", `LOGIN ${local}@${tern.domain} ${password}`);
  assert.match(r.status, /^OK/, r.status);
  return c;
}
