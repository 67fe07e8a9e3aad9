// tern serve: runs the relay until SIGTERM/SIGINT (which also stop a start still under way);
// SIGHUP rereads the config (naming changes that need a restart) and reloads certificates. Prints
// a machine-readable ready line ("tern ready {json}") once every listener is bound. An error that
// escapes every handler is reported and the relay keeps serving (process_guard.ts).

import { startRelay } from "../../app/relay.ts";
import { lockDataDir } from "../../app/data_dir.ts";
import { describeEscaped, installProcessGuard } from "../../app/process_guard.ts";
import { dcloginUrl } from "../../http/mod.ts";
import type { Relay } from "../../app/relay.ts";
import { configFrom, parse } from "../context.ts";
import { releaseStartupGarbage } from "../runtime_env.ts";
import { quietCollector } from "../../quiet_collector.ts";
import { activityCount } from "../../net/mod.ts";
import type { CliIo } from "../context.ts";

/** After the sessions' grace: time for the rest of the relay (queues, database) to stop. */
const STOP_MARGIN_MS = 5000;

export const usage = "tern serve [--config FILE] [--dev] [--data-dir DIR] [--domain D]";

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { "no-banner": { type: "boolean" } });
  const config = configFrom(values, io);
  // One relay per SQLite data directory; PostgreSQL instances share theirs by design.
  const lock = config.store === "sqlite" ? lockDataDir(config.dataDir) : null;
  // From here on SIGTERM and SIGINT stop the relay cleanly, also while it is still starting
  // (migrating, connecting to its database): the start is abandoned and the lock released.
  const signals = listenForSignals();
  try {
    installProcessGuard((kind, err) =>
      io.err(`tern: ${kind}, the relay keeps serving: ${describeEscaped(err)}`)
    );
    let relay: Relay;
    try {
      relay = await startRelay(config, { signal: signals.stop.signal });
    } catch (err) {
      if (!signals.stop.signal.aborted) throw err;
      io.err(`tern: ${signals.received} received during startup, stopped`);
      return 0;
    }
    releaseStartupGarbage();
    // Memory a burst of work leaves on the main thread goes back once clients are quiet.
    const collector = quietCollector({ activity: activityCount });
    io.out(
      `tern ready ${
        JSON.stringify({ domain: config.mailDomain, listen: relay.addresses, pid: Deno.pid })
      }`,
    );
    try {
      if (config.dev && !values["no-banner"]) await printDevBanner(relay, io);
      return await serveUntilStopped(relay, io, signals, () => configFrom(values, io));
    } finally {
      collector.stop();
    }
  } finally {
    signals.remove();
    lock?.close();
  }
}

interface Signals {
  /** Aborted by the first SIGTERM or SIGINT. */
  stop: AbortController;
  received: Deno.Signal | null;
  /** Set once the relay runs; a SIGHUP before then is reported and otherwise ignored. */
  onHangup: (() => void) | null;
  remove(): void;
}

function listenForSignals(): Signals {
  const signals: Signals = {
    stop: new AbortController(),
    received: null,
    onHangup: null,
    remove: () => {
      for (const [s, h] of handlers.splice(0)) Deno.removeSignalListener(s, h);
    },
  };
  const stop = (sig: Deno.Signal) => () => {
    signals.received ??= sig;
    signals.stop.abort(new Error(`${sig} received`));
    // A second SIGTERM or SIGINT ends the process at once, as the system's default does.
    signals.remove();
  };
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", stop("SIGTERM")],
    ["SIGINT", stop("SIGINT")],
    ["SIGHUP", () => signals.onHangup?.()],
  ];
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  return signals;
}

async function printDevBanner(relay: Relay, io: CliIo) {
  // Loaded here: only --dev shows a QR code in the terminal.
  const { renderUnicodeCompact } = await import("uqr");
  const creds = relay.services.accounts.generateCredentials();
  const link = dcloginFor(relay, creds.email, creds.password);
  io.out("");
  io.out(`tern dev relay for ${relay.config.mailDomain}, data in ${relay.config.dataDir}`);
  io.out("Scan with Delta Chat (or paste the link) to create an account on first login:");
  io.out(link);
  io.out(renderUnicodeCompact(link, { border: 1 }));
  io.out(
    `Admin token: ${relay.adminToken}   web admin: ${
      relay.addresses.https ? `https://${relay.addresses.https}/admin` : "(https off)"
    }`,
  );
}

export function dcloginFor(relay: Relay, email: string, password: string): string {
  const port = (name: "imaps" | "imap" | "submissions" | "submission" | "https") =>
    Number(relay.addresses[name]?.split(":").pop() ?? 0);
  return dcloginUrl(
    {
      mailDomain: relay.config.mailDomain,
      hostname: relay.config.hostname,
      isIpDomain: relay.config.isIpDomain,
      selfSigned: relay.tls.selfSigned,
      ports: {
        imaps: port("imaps"),
        imap: port("imap"),
        submissions: port("submissions"),
        submission: port("submission"),
        https: port("https"),
      },
    },
    email,
    password,
  );
}

/** Top-level config keys whose values differ (compared as JSON). */
function changedKeys(a: object, b: object): string[] {
  const x = a as Record<string, unknown>, y = b as Record<string, unknown>;
  return [...new Set([...Object.keys(x), ...Object.keys(y)])]
    .filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k])).sort();
}

async function serveUntilStopped(
  relay: Relay,
  io: CliIo,
  signals: Signals,
  reloadConfig: () => Relay["config"],
): Promise<number> {
  signals.onHangup = () => {
    // The config file is read again and checked; certificates are taken up at once, other
    // changes are named (they apply at the next start; dynamic settings live in the database).
    try {
      const changed = changedKeys(relay.config, reloadConfig());
      io.err(
        changed.length
          ? `tern: SIGHUP: config changed (${changed.join(", ")}): restart to apply`
          : "tern: SIGHUP: config unchanged",
      );
    } catch (err) {
      io.err(`tern: SIGHUP: config not reloaded: ${(err as Error).message}`);
    }
    relay.reloadTls().then(
      () => io.err("tern: SIGHUP: certificates reloaded"),
      (err) => io.err(`tern: SIGHUP: reload failed, keeping the old certificates: ${err.message}`),
    );
  };
  const stop = signals.stop.signal;
  if (!stop.aborted) {
    await new Promise<void>((resolve) => stop.addEventListener("abort", () => resolve()));
  }
  signals.onHangup = null;
  io.err(`tern: ${signals.received} received, stopping`);
  // Listeners stop at once and sessions get the grace; should anything else hang (a request
  // that never ends), the process still ends shortly after the grace.
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const tooLong = new Promise<number>((resolve) => {
    deadline = setTimeout(() => {
      io.err("tern: stop took too long, exiting");
      resolve(1);
    }, relay.config.shutdownGraceMs + STOP_MARGIN_MS);
  });
  const closed = relay.close().then(() => 0, (err) => {
    io.err(`tern: stop failed: ${err}`);
    return 1;
  });
  try {
    return await Promise.race([closed, tooLong]);
  } finally {
    clearTimeout(deadline);
  }
}
