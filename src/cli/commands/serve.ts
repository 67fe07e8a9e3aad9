// tern serve: runs the relay until SIGTERM/SIGINT; SIGHUP rereads the config (naming changes that
// need a restart) and reloads certificates. Prints a
// machine-readable ready line ("tern ready {json}") once every listener is bound. An error that
// escapes every handler is reported and the relay keeps serving (process_guard.ts).

import { renderUnicodeCompact } from "uqr";
import { startRelay } from "../../app/relay.ts";
import { lockDataDir } from "../../app/data_dir.ts";
import { describeEscaped, installProcessGuard } from "../../app/process_guard.ts";
import { dcloginUrl } from "../../http/mod.ts";
import type { Relay } from "../../app/relay.ts";
import { configFrom, parse } from "../context.ts";
import { releaseStartupGarbage } from "../runtime_env.ts";
import type { CliIo } from "../context.ts";

/** After the sessions' grace: time for the rest of the relay (queues, database) to stop. */
const STOP_MARGIN_MS = 5000;

export const usage = "tern serve [--config FILE] [--dev] [--data-dir DIR] [--domain D]";

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { "no-banner": { type: "boolean" } });
  const config = configFrom(values, io);
  // One relay per SQLite data directory; PostgreSQL instances share theirs by design.
  const lock = config.store === "sqlite" ? lockDataDir(config.dataDir) : null;
  installProcessGuard((kind, err) =>
    io.err(`tern: ${kind}, the relay keeps serving: ${describeEscaped(err)}`)
  );
  const relay = await startRelay(config);
  releaseStartupGarbage();
  io.out(
    `tern ready ${
      JSON.stringify({ domain: config.mailDomain, listen: relay.addresses, pid: Deno.pid })
    }`,
  );
  if (config.dev && !values["no-banner"]) printDevBanner(relay, io);
  const code = await waitForSignals(relay, io, () => configFrom(values, io));
  lock?.close();
  return code;
}

function printDevBanner(relay: Relay, io: CliIo) {
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

function waitForSignals(
  relay: Relay,
  io: CliIo,
  reloadConfig: () => Relay["config"],
): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (sig: Deno.Signal) => {
      if (stopping) return;
      stopping = true;
      io.err(`tern: ${sig} received, stopping`);
      for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
      // Listeners stop at once and sessions get the grace; should anything else hang (a request
      // that never ends), the process still ends shortly after the grace.
      const deadline = setTimeout(() => {
        io.err("tern: stop took too long, exiting");
        resolve(1);
      }, relay.config.shutdownGraceMs + STOP_MARGIN_MS);
      relay.close().then(() => resolve(0), (err) => {
        io.err(`tern: stop failed: ${err}`);
        resolve(1);
      }).finally(() => clearTimeout(deadline));
    };
    const hup = () => {
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
        (err) =>
          io.err(`tern: SIGHUP: reload failed, keeping the old certificates: ${err.message}`),
      );
    };
    const handlers: [Deno.Signal, () => void][] = [
      ["SIGTERM", () => stop("SIGTERM")],
      ["SIGINT", () => stop("SIGINT")],
      ["SIGHUP", hup],
    ];
    for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  });
}
