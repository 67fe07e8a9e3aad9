// The Delta Chat core generations the end-to-end tests run: the one most tests use (2.57), the
// newest release, one from around 2.30 and one 1.x from 2025, each the real deltachat-rpc-server
// from npm (deno.json pins them side by side). Binaries are found by their exact version: the
// top-level node_modules link may point at any of them.

import { fileURLToPath } from "node:url";
import type { StdioDeltaChat } from "@deltachat/jsonrpc-client";

export interface Core {
  /** Exact npm version of the rpc server. */
  version: string;
  binary: string;
  /** The JSON-RPC client class of the matching generation (typed as the 2.57 one). */
  client(): Promise<typeof StdioDeltaChat>;
}

const MODULES = new URL("../../node_modules/.deno/", import.meta.url);

function binary(version: string): string {
  return fileURLToPath(
    new URL(
      `@deltachat+stdio-rpc-server-linux-x64@${version}/node_modules/@deltachat/stdio-rpc-server-linux-x64/deltachat-rpc-server`,
      MODULES,
    ),
  );
}

const v257 = async () => (await import("@deltachat/jsonrpc-client")).StdioDeltaChat;

export const CORES = {
  "2.57": { version: "2.57.0", binary: binary("2.57.0"), client: v257 },
  // No 2.62 client is published; the 2.57 one speaks the same JSON-RPC for what tests use.
  "2.62": { version: "2.62.0", binary: binary("2.62.0"), client: v257 },
  "2.33": {
    version: "2.33.0",
    binary: binary("2.33.0"),
    client: async () =>
      (await import("@deltachat/jsonrpc-client-2.33"))
        .StdioDeltaChat as unknown as typeof StdioDeltaChat,
  },
  "1.160": {
    version: "1.160.0",
    binary: binary("1.160.0"),
    client: async () =>
      (await import("@deltachat/jsonrpc-client-1.160"))
        .StdioDeltaChat as unknown as typeof StdioDeltaChat,
  },
} as const satisfies Record<string, Core>;

export type CoreName = keyof typeof CORES;
