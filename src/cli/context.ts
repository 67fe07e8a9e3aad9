// Shared CLI plumbing: output streams, option parsing, config loading.

import { parseArgs } from "node:util";
import { existsSync, readFileSync } from "node:fs";
import { ConfigError, loadConfig } from "../config/mod.ts";
import type { Config } from "../config/mod.ts";

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  env: Record<string, string | undefined>;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export const DEFAULT_CONFIG = "/etc/tern/tern.toml";

export const CONFIG_OPTIONS = {
  config: { type: "string", short: "c" },
  dev: { type: "boolean" },
  "data-dir": { type: "string" },
  domain: { type: "string" },
} as const;

type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

export function parse(args: string[], options: OptionSpec): {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
} {
  try {
    const r = parseArgs({
      args,
      options: { ...CONFIG_OPTIONS, ...options },
      allowPositionals: true,
      strict: true,
    });
    return {
      values: r.values as Record<string, string | boolean | undefined>,
      positionals: r.positionals,
    };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Loads the config named by --config (or the default file when present) with flags on top. */
export function configFrom(values: Record<string, unknown>, io: CliIo): Config {
  // TERN_DEV=1 is --dev for every command (`deno task tern …` in a checkout sets it).
  const dev = Boolean(values.dev) || io.env.TERN_DEV === "1";
  const file = (values.config as string | undefined) ?? io.env.TERN_CONFIG ??
    (existsSync(DEFAULT_CONFIG) && !dev ? DEFAULT_CONFIG : undefined);
  let fileText: string | undefined;
  if (file) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new ConfigError([`Cannot read config file "${file}": ${(err as Error).message}`]);
    }
    fileText = decodeUtf8(bytes, file);
  }
  const overrides: Record<string, unknown> = {};
  if (values["data-dir"]) overrides.data_dir = values["data-dir"];
  if (values.domain) overrides.domain = values.domain;
  const { config, warnings } = loadConfig({
    fileText,
    fileName: file,
    env: io.env,
    dev,
    overrides,
  });
  for (const w of warnings) io.err(`warning: ${w}`);
  return config;
}

/** The file's text; TOML is UTF-8, and a replacement character would silently change a value. */
function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const valid = new TextDecoder().decode(bytes).split("\uFFFD")[0];
    const line = valid.split("\n").length;
    throw new ConfigError([`${file}:${line}: not UTF-8 text (TOML files are UTF-8)`]);
  }
}
