// tern version: version, commit and build date.

import { BUILD, VERSION } from "../../version.ts";
import type { CliIo } from "../context.ts";

export const usage = "tern version";

export function run(_args: string[], io: CliIo): Promise<number> {
  io.out(
    `tern ${VERSION} (commit ${BUILD.commit}, built ${BUILD.date}, deno ${Deno.version.deno})`,
  );
  return Promise.resolve(0);
}
