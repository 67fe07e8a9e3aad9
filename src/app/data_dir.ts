// The data directory: database, TLS material, admin token and other secrets, all created on
// first start with owner-only permissions.

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

export function ensureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

export function databasePath(dir: string): string {
  return join(dir, "tern.db");
}

/** A hex secret kept in data_dir/name (mode 0600), created on first use. */
export function readOrCreateSecret(dir: string, name: string, bytes = 32): string {
  const path = join(dir, name);
  if (existsSync(path)) {
    const v = readFileSync(path, "utf8").trim();
    if (/^[0-9a-f]{16,}$/.test(v)) return v;
  }
  return writeSecret(dir, name, bytes);
}

export function writeSecret(dir: string, name: string, bytes = 32): string {
  ensureDataDir(dir);
  const v = randomBytes(bytes).toString("hex");
  const path = join(dir, name);
  writeFileSync(path, v + "\n", { mode: 0o600 });
  chmodSync(path, 0o600);
  return v;
}
