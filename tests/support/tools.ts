// What a test needs from the machine (a Debian tool on PATH, root), checked once when the test
// file loads. A test whose need is missing is ignored and says why in its name, so the summary
// shows "… (needs swaks: not on PATH) ... ignored" instead of a failure or a vacuous pass:
//
//   const need = requireTool("swaks");
//   Deno.test({ name: need.title("swaks submits"), ignore: need.ignore, fn });

export interface Requirement {
  /** True when something is missing: pass it as the test's `ignore`. */
  ignore: boolean;
  /** What is missing, e.g. "swaks, dnsmasq not on PATH"; "" when nothing is. */
  reason: string;
  /** The test name, with the reason appended when the test is ignored. */
  title(name: string): string;
}

function requirement(missing: string[]): Requirement {
  const reason = missing.join("; ");
  return {
    ignore: missing.length > 0,
    reason,
    title: (name) => missing.length ? `${name} (ignored: ${reason})` : name,
  };
}

/** The path of the executable `name` in PATH, or null (no process is started). */
export function which(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const st = Deno.statSync(`${dir}/${name}`);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** Every tool must be on PATH. */
export function requireTool(...tools: string[]): Requirement {
  const absent = tools.filter((t) => which(t) === null);
  return requirement(absent.length ? [`needs ${absent.join(", ")}: not on PATH`] : []);
}

/** The process must run as root (binding ports below 1024, mounting, starting Postfix). */
export function requireRoot(): Requirement {
  return requirement(Deno.uid() === 0 ? [] : ["needs root"]);
}

/** All of the given requirements. */
export function requireAll(...reqs: Requirement[]): Requirement {
  return requirement(reqs.filter((r) => r.ignore).map((r) => r.reason));
}
