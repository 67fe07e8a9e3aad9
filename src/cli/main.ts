// Command-line entry: dispatches `tern <command>`; prints usage and exits non-zero on bad input.

import { ConfigError } from "../config/mod.ts";
import { isRelayError } from "../errors.ts";
import { MigrationError } from "../store/sqlite/mod.ts";
import { UsageError } from "./context.ts";
import type { CliIo } from "./context.ts";
interface Command {
  usage: string;
  run(args: string[], io: CliIo): Promise<number>;
}

// Each command's module loads when that command runs: `tern serve` does not carry the other
// commands (doctor, install, backup…) in the relay's memory. Help and usage errors load them all.
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: () => import("./commands/serve.ts"),
  version: () => import("./commands/version.ts"),
  "admin-token": () => import("./commands/admin_token.ts"),
  accounts: () => import("./commands/accounts.ts"),
  settings: () => import("./commands/settings.ts"),
  queue: () => import("./commands/queue.ts"),
  tasks: () => import("./commands/tasks.ts"),
  dns: () => import("./commands/dns.ts"),
  doctor: () => import("./commands/doctor.ts"),
  install: () =>
    import("./commands/install.ts").then((install) => ({
      usage: install.usage,
      run: (a: string[], io: CliIo) => install.run(["install", ...a], io),
    })),
  uninstall: () =>
    import("./commands/install.ts").then((install) => ({
      usage: "",
      run: (a: string[], io: CliIo) => install.run(["uninstall", ...a], io),
    })),
  backup: () =>
    import("./commands/backup.ts").then((backup) => ({
      usage: backup.usage,
      run: (a: string[], io: CliIo) => backup.run(["backup", ...a], io),
    })),
  restore: () =>
    import("./commands/backup.ts").then((backup) => ({
      usage: "",
      run: (a: string[], io: CliIo) => backup.run(["restore", ...a], io),
    })),
  migrate: () => import("./commands/migrate.ts"),
  "migrate-store": () => import("./commands/migrate_store.ts"),
};

export async function usageText(): Promise<string> {
  const commands = await Promise.all(Object.values(COMMANDS).map((load) => load()));
  return [
    "tern: a chatmail relay for Delta Chat",
    "",
    "usage:",
    ...commands.flatMap((c) => c.usage.split("\n").filter(Boolean).map((l) => "  " + l)),
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
    (name ? io.out : io.err)(await usageText());
    return name ? 0 : 2;
  }
  if (name === "--version") return (await COMMANDS.version()).run([], io);
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    io.err(`tern: unknown command "${name}"\n\n${await usageText()}`);
    return 2;
  }
  const cmd = await load();
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
