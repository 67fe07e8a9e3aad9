// tern admin-token [--rotate]: prints the admin API token kept in data_dir/admin_token (0600).

import { readOrCreateSecret, writeSecret } from "../../app/data_dir.ts";
import { configFrom, parse } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = "tern admin-token [--rotate]";

export function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { rotate: { type: "boolean" } });
  const config = configFrom(values, io);
  if (config.adminToken) {
    io.out(config.adminToken);
    if (values.rotate) io.err("warning: admin_token is set in the configuration; change it there");
    return Promise.resolve(values.rotate ? 1 : 0);
  }
  io.out(
    values.rotate
      ? writeSecret(config.dataDir, "admin_token")
      : readOrCreateSecret(config.dataDir, "admin_token"),
  );
  return Promise.resolve(0);
}
