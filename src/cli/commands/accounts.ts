// tern accounts list|create|delete|block|unblock|password

import { openServices } from "../../app/services.ts";
import { configFrom, parse, UsageError } from "../context.ts";
import type { CliIo } from "../context.ts";

export const usage = `tern accounts list [--search TEXT] [--limit N] [--offset N]
tern accounts create EMAIL [PASSWORD]     (a password is generated when omitted)
tern accounts delete EMAIL
tern accounts block EMAIL
tern accounts unblock EMAIL
tern accounts password EMAIL PASSWORD`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {
    search: { type: "string" },
    limit: { type: "string" },
    offset: { type: "string" },
    json: { type: "boolean" },
  });
  const [sub, email, password] = positionals;
  const need = (n: number) => {
    if (positionals.length !== n) {
      throw new UsageError(`accounts ${sub}: expected ${n - 1} argument(s)`);
    }
  };
  const svc = await openServices(configFrom(values, io));
  try {
    switch (sub) {
      case "list": {
        need(1);
        const page = await svc.accounts.list({
          search: values.search as string | undefined,
          limit: toInt(values.limit, 100),
          offset: toInt(values.offset, 0),
        });
        if (values.json) io.out(JSON.stringify(page));
        else {
          for (const a of page.items) {
            io.out(
              `${a.address}\t${a.blocked ? "blocked" : "active"}\t${a.usedBytes} bytes\t` +
                `last login ${a.lastLoginAt ? new Date(a.lastLoginAt).toISOString() : "never"}`,
            );
          }
          io.out(`${page.items.length} of ${page.total} account(s)`);
        }
        return 0;
      }
      case "create": {
        if (positionals.length < 2 || positionals.length > 3) {
          throw new UsageError("accounts create: expected EMAIL [PASSWORD]");
        }
        const pw = password ?? svc.accounts.generateCredentials().password;
        const a = await svc.accounts.create(email, pw);
        io.out(`created ${a.address}${password ? "" : `\npassword: ${pw}`}`);
        return 0;
      }
      case "delete":
        need(2);
        await svc.accounts.delete(email);
        io.out(`deleted ${email.toLowerCase()}`);
        return 0;
      case "block":
      case "unblock":
        need(2);
        await svc.accounts.setBlocked(email, sub === "block");
        io.out(`${sub}ed ${email.toLowerCase()}`);
        return 0;
      case "password":
        need(3);
        await svc.accounts.setPassword(email, password);
        io.out(`password changed for ${email.toLowerCase()}`);
        return 0;
      default:
        throw new UsageError(
          sub ? `accounts: unknown subcommand "${sub}"` : "accounts: missing subcommand",
        );
    }
  } finally {
    await svc.close();
  }
}

function toInt(v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new UsageError(`expected a non-negative integer, got "${v}"`);
  }
  return n;
}
