// Version and build information. scripts/compile.ts fills BUILD from the commit being built.

export const VERSION = "0.1.0";

export interface BuildInfo {
  commit: string;
  date: string;
}

import build from "./build_info.json" with { type: "json" };

export const BUILD: BuildInfo = build;
