// A PostgreSQL server of its own for a test (Debian's postgresql): initdb into a temporary
// directory, the postmaster on a loopback port drawn at random, password (SCRAM) login for the
// superuser "tern". Ignored with a reason when PostgreSQL is not installed. As root (the CI) the
// server runs as the "postgres" user (PostgreSQL refuses to run as root).

import { freePort, retryOnAddrInUse } from "./ports.ts";
import type { Requirement } from "./tools.ts";

const dec = new TextDecoder();

/** The newest /usr/lib/postgresql/N/bin holding initdb and postgres, or null. */
export function postgresBinDir(): string | null {
  const base = "/usr/lib/postgresql";
  let versions: number[] = [];
  try {
    versions = [...Deno.readDirSync(base)].map((e) => Number(e.name)).filter((n) => n > 0);
  } catch {
    return null;
  }
  for (const v of versions.sort((a, b) => b - a)) {
    const dir = `${base}/${v}/bin`;
    try {
      Deno.statSync(`${dir}/initdb`);
      Deno.statSync(`${dir}/postgres`);
      return dir;
    } catch {
      // not this version
    }
  }
  return null;
}

function postgresUid(): { uid: number; gid: number } | null {
  try {
    const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) =>
      l.startsWith("postgres:")
    );
    if (!line) return null;
    const [, , uid, gid] = line.split(":");
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return null;
  }
}

/** What a PostgreSQL test needs: the server binaries, and as root the postgres user. */
export const postgresNeed: Requirement = (() => {
  const missing: string[] = [];
  if (!postgresBinDir()) {
    missing.push("needs PostgreSQL (Debian package postgresql): /usr/lib/postgresql/*/bin absent");
  } else if (Deno.uid() === 0 && !postgresUid()) missing.push("needs the postgres user");
  const reason = missing.join("; ");
  return {
    ignore: missing.length > 0,
    reason,
    title: (name: string) => missing.length ? `${name} (ignored: ${reason})` : name,
  };
})();

export interface PostgresServer {
  host: string;
  port: number;
  /** postgres://tern:…@127.0.0.1:PORT/DB for a database (default "postgres"). */
  url(database?: string): string;
  /** Creates an empty database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Runs SQL through psql as the superuser (setup, checks). */
  psql(sql: string, database?: string): Promise<string>;
  /** What the server logged so far. */
  log(): string;
  stop(): Promise<void>;
}

const PASSWORD = "tern-test-password";

export interface PostgresOptions {
  /** fsync and synchronous commit as in production (the benchmark); tests turn them off. */
  durable?: boolean;
  /** Address the server listens on (default 127.0.0.1). */
  host?: string;
}

/** Starts a fresh server; resolves once it accepts connections. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(postgresNeed.reason);
  const host = options.host ?? "127.0.0.1";
  const root = await Deno.makeTempDir({ prefix: "tern-pg-" });
  const asRoot = Deno.uid() === 0;
  const owner = asRoot ? postgresUid() : null;
  // The postgres user must reach the data directory, and own it.
  await Deno.chmod(root, 0o755);
  const data = `${root}/data`;
  const sock = `${root}/sock`;
  await Deno.mkdir(sock);
  await Deno.mkdir(data, { mode: 0o700 });
  await Deno.writeTextFile(`${root}/pw`, PASSWORD + "\n");
  if (owner) {
    await Deno.chown(sock, owner.uid, owner.gid);
    await Deno.chown(data, owner.uid, owner.gid);
    await Deno.chown(`${root}/pw`, owner.uid, owner.gid);
  }
  const as = (cmd: string, args: string[]) =>
    // setpriv execs the command itself (runuser would stay its parent and keep our signals).
    owner
      ? ["setpriv", [
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
        cmd,
        ...args,
      ]] as const
      : [cmd, args] as const;
  const [initCmd, initArgs] = as(`${bin}/initdb`, [
    "-D",
    data,
    "-U",
    "tern",
    `--pwfile=${root}/pw`,
    "--auth=scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
  ]);
  const init = await new Deno.Command(initCmd, {
    args: [...initArgs],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!init.success) {
    await Deno.remove(root, { recursive: true });
    throw new Error(`initdb failed: ${dec.decode(init.stderr)}`);
  }
  const durable = options.durable ?? false;
  try {
    return await retryOnAddrInUse(async () => {
      const port = await freePort();
      const [cmd, args] = as(`${bin}/postgres`, [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        sock,
        "-c",
        `listen_addresses=${host}`,
        "-c",
        "max_connections=200",
        "-c",
        `fsync=${durable ? "on" : "off"}`,
        "-c",
        `synchronous_commit=${durable ? "on" : "off"}`,
        "-c",
        `full_page_writes=${durable ? "on" : "off"}`,
        "-c",
        "shared_buffers=64MB",
      ]);
      const child = new Deno.Command(cmd, {
        args: [...args],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let text = "";
      let readyResolve!: () => void;
      const ready = new Promise<void>((r) => (readyResolve = r));
      const logDone = (async () => {
        for await (const chunk of child.stderr) {
          text += dec.decode(chunk, { stream: true });
          if (text.includes("ready to accept connections")) readyResolve();
          if (text.length > 1 << 20) text = text.slice(-(1 << 19));
        }
      })();
      const exited = child.status.then((s) => s);
      const timeout = new Promise<"timeout">((r) => {
        const t = setTimeout(() => r("timeout"), 30_000);
        ready.then(() => clearTimeout(t));
        exited.then(() => clearTimeout(t));
      });
      const first = await Promise.race([ready.then(() => "ready" as const), exited, timeout]);
      if (first !== "ready") {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
        await exited;
        await logDone;
        throw new Error(`PostgreSQL did not start on ${host}:${port}:\n${text}`);
      }
      const url = (db = "postgres") =>
        `postgres://tern:${PASSWORD}@${host.includes(":") ? `[${host}]` : host}:${port}/${db}`;
      const psql = async (sql: string, db = "postgres") => {
        const out = await new Deno.Command(`${bin}/psql`, {
          args: ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url(db), "-c", sql],
          stdout: "piped",
          stderr: "piped",
        }).output();
        if (!out.success) throw new Error(`psql: ${dec.decode(out.stderr)}`);
        return dec.decode(out.stdout).trim();
      };
      let stopped = false;
      return {
        host,
        port,
        url,
        psql,
        async createDatabase(name: string) {
          await psql(`CREATE DATABASE "${name.replace(/"/g, "")}"`);
          return url(name);
        },
        log: () => text,
        async stop() {
          if (stopped) return;
          stopped = true;
          try {
            // SIGQUIT: immediate shutdown (no checkpoint: the data directory goes next).
            child.kill("SIGQUIT");
          } catch {
            // already gone
          }
          const kill = setTimeout(() => {
            try {
              child.kill("SIGKILL");
            } catch {
              // already gone
            }
          }, 15_000);
          await exited;
          clearTimeout(kill);
          await logDone;
          await Deno.remove(root, { recursive: true });
        },
      };
    });
  } catch (err) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw err;
  }
}

/**
 * Registers the test that stops a server a test file started as it loaded (call it after the
 * file's other tests: they run in the order they were registered). Stopping ends the server's
 * process and pipes here, which the sanitizers would count against this test: they are off.
 */
export function stopsServerOfFile(server: PostgresServer | null): void {
  Deno.test({
    name: postgresNeed.title("stops the PostgreSQL server of this file"),
    ignore: postgresNeed.ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => server!.stop(),
  });
}
