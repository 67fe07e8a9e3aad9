// tern settings get [KEY] | set KEY VALUE | reset KEY: dynamic settings, applied without restart.

import { openServices } from "../../app/services.ts";
import { configFrom, parse, UsageError } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = `tern settings get [KEY]
tern settings set KEY VALUE
tern settings reset KEY`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {});
  const [sub, key, value] = positionals;
  const svc = await openServices(configFrom(values, io));
  try {
    if (sub === "get" && positionals.length <= 2) {
      const all = svc.settings.all().filter((s) => !key || s.key === key);
      if (key && all.length === 0) throw new UsageError(`settings: unknown key "${key}"`);
      for (const s of all) io.out(key ? s.value : `${s.key} = ${s.value}\t# ${s.doc}`);
      return 0;
    }
    if (sub === "set" && positionals.length === 3) {
      io.out(`${key} = ${await svc.settings.set(key, value)}`);
      return 0;
    }
    if (sub === "reset" && positionals.length === 2) {
      io.out(`${key} = ${await svc.settings.set(key, null)}`);
      return 0;
    }
    throw new UsageError("settings: expected get [KEY], set KEY VALUE or reset KEY");
  } finally {
    await svc.close();
  }
}
