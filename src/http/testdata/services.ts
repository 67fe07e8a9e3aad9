// Test wiring for the HTTP edge: real store (in memory), settings and accounts behind HttpDeps,
// with a controllable clock. Only tests import this file.

import { openSqliteStore } from "../../store/sqlite/mod.ts";
import { SettingsService } from "../../settings/mod.ts";
import { AccountService } from "../../accounts/mod.ts";
import type { HttpConfig, HttpDeps } from "../backend.ts";

export const TRUSTED: HttpConfig = {
  mailDomain: "example.org",
  hostname: "mail.example.org",
  isIpDomain: false,
  selfSigned: false,
  ports: { imaps: 993, imap: 143, submissions: 465, submission: 587, https: 443 },
  adminContact: "",
  limits: {
    maxMessageBytes: 30 * 1024 * 1024,
    maxRecipients: 1000,
    maxMailboxBytes: 500 * 1024 * 1024,
    sendPerMinute: 60,
    deleteMailsAfterDays: 20,
    deleteLargeAfterDays: 7,
    deleteInactiveUsersAfterDays: 90,
  },
};

export const IP_SELF_SIGNED: HttpConfig = {
  ...TRUSTED,
  mailDomain: "[192.0.2.1]",
  hostname: "192.0.2.1",
  isIpDomain: true,
  selfSigned: true,
  ports: { imaps: 2993, imap: 2143, submissions: 2465, submission: 2587, https: 8443 },
};

export async function httpServices(
  config: HttpConfig = TRUSTED,
  overrides: Partial<HttpDeps> = {},
) {
  const store = openSqliteStore(":memory:");
  const settings = new SettingsService({ store });
  await settings.load();
  const clock = { now: 1_700_000_000_000 };
  const accounts = new AccountService({
    store,
    settings,
    domain: config.mailDomain,
    limits: {
      usernameMinLength: 9,
      usernameMaxLength: 9,
      passwordMinLength: 9,
      maxCreationsPerIpPerHour: 0,
    },
    now: () => clock.now,
    sleep: () => Promise.resolve(),
  });
  const deps: HttpDeps = {
    config,
    accounts,
    settings,
    consumeRegistrationToken: (t) => store.consumeToken(t, clock.now),
    now: () => clock.now,
    ...overrides,
  };
  return { store, settings, accounts, clock, deps, [Symbol.dispose]: () => store.close() };
}

/** Request init plus the Deno.serve handler info Hono sees as c.env. */
export function fromAddress(
  ip: string,
): { remoteAddr: { hostname: string; port: number; transport: "tcp" } } {
  return { remoteAddr: { hostname: ip, port: 40000, transport: "tcp" } };
}
