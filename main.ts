// tern: a chatmail relay for Delta Chat. See README.md; `tern help` lists the commands.

import { runCli } from "./src/cli/main.ts";

if (import.meta.main) Deno.exit(await runCli(Deno.args));
