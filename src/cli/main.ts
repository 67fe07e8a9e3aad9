// Command-line entry: dispatches `tern <command>`; prints usage and exits non-zero on bad input.

import { ConfigError } from "../config/mod.ts";
import { isRelayError } from "../errors.ts";
import { MigrationError } from "../store/sqlite/mod.ts";
import { UsageError } from "./context.ts";
import type { CliIo } from "./context.ts";
import * as accounts from "./commands/accounts.ts";
import * as adminToken from "./commands/admin_token.ts";
import * as migrate from "./commands/migrate.ts";
import * as migrateStore from "./commands/migrate_store.ts";
import * as serve from "./commands/serve.ts";
import * as settings from "./commands/settings.ts";
import * as version from "./commands/version.ts";
import * as queue from "./commands/queue.ts";
import * as dns from "./commands/dns.ts";
import * as tasks from "./commands/tasks.ts";
import * as backup from "./commands/backup.ts";
import * as doctor from "./commands/doctor.ts";
import * as install from "./commands/install.ts";

interface Command {
  usage: string;
  run(args: string[], io: CliIo): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve,
  version,
  "admin-token": adminToken,
  accounts,
  settings,
  queue,
  tasks,
  dns,
  doctor,
  install: {
    usage: install.usage,
    run: (a: string[], io: CliIo) => install.run(["install", ...a], io),
  },
  uninstall: { usage: "", run: (a: string[], io: CliIo) => install.run(["uninstall", ...a], io) },
  backup: {
    usage: backup.usage,
    run: (a: string[], io: CliIo) => backup.run(["backup", ...a], io),
  },
  restore: { usage: "", run: (a: string[], io: CliIo) => backup.run(["restore", ...a], io) },
  migrate,
  "migrate-store": migrateStore,
};

export function usageText(): string {
  return [
    "tern: a chatmail relay for Delta Chat",
    "",
    "usage:",
    ...Object.values(COMMANDS).flatMap((c) =>
      c.usage.split("\n").filter(Boolean).map((l) => "  " + l)
    ),
    "",
    "common options: --config FILE (default /etc/tern/tern.toml), --dev, --data-dir DIR, --domain D",
  ].join("\n");
}

const defaultIo: CliIo = {
  out: (l) => console.log(l),
  err: (l) => console.error(l),
  env: Deno.env.toObject(),
};

export async function runCli(args: string[], io: CliIo = defaultIo): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    (name ? io.out : io.err)(usageText());
    return name ? 0 : 2;
  }
  if (name === "--version") return version.run([], io);
  const cmd = COMMANDS[name];
  if (!cmd) {
    io.err(`tern: unknown command "${name}"\n\n${usageText()}`);
    return 2;
  }
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`tern ${name}: ${err.message}\n\nusage:\n  ${cmd.usage.split("\n").join("\n  ")}`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof MigrationError) {
      io.err(`tern: ${err.message}`);
      return 1;
    }
    if (isRelayError(err)) {
      io.err(`tern ${name}: ${err.message}`);
      return 1;
    }
    io.err(`tern ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
