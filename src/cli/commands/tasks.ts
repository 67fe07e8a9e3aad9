// tern tasks list | run NAME|all: the maintenance tasks a running relay schedules hourly.

import { openServices } from "../../app/services.ts";
import { createMaintenance } from "../../app/maintenance.ts";
import { TASKS } from "../../tasks/mod.ts";
import { configFrom, parse, UsageError } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = `tern tasks list
tern tasks run NAME|all`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {});
  const [sub, name] = positionals;
  if (sub === "list" && positionals.length === 1) {
    for (const t of TASKS) io.out(`${t.name}\t${t.doc}`);
    return 0;
  }
  if (sub !== "run" || positionals.length !== 2) {
    throw new UsageError("tasks: expected list or run NAME|all");
  }
  if (name !== "all" && !TASKS.some((t) => t.name === name)) {
    throw new UsageError(
      `tasks: unknown task "${name}"; known: ${TASKS.map((t) => t.name).join(", ")}, all`,
    );
  }
  const svc = await openServices(configFrom(values, io));
  try {
    const m = createMaintenance(svc);
    const results = name === "all" ? await m.runAll() : { [name]: await m.run(name) };
    for (const [task, result] of Object.entries(results)) io.out(`${task}: ${result}`);
    return 0;
  } finally {
    await svc.close();
  }
}
