// Small helpers the test files share: running the tern command line, stopping processes, reads
// with a deadline. (Ports: ports.ts; tools a test needs: tools.ts.)

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

/** Runs `tern ARGS…` (main.ts) as a separate process from the repository root. */
export async function runTern(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** SIGTERM, then SIGKILL if the process is still there after graceMs; resolves once it exited. */
export async function terminate(child: Deno.ChildProcess, graceMs: number): Promise<void> {
  const signal = (s: Deno.Signal) => {
    try {
      child.kill(s);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const kill = setTimeout(() => signal("SIGKILL"), graceMs);
  await child.status;
  clearTimeout(kill);
}

/** conn.read(buf), failing with a message after `ms` without data: a test never waits forever. */
export async function readWithin(conn: Deno.Conn, buf: Uint8Array, ms = 30_000) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      conn.read(buf),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer from the server within ${ms / 1000} s`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
