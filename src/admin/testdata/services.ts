// Test wiring for the admin edge: the real store (in memory), settings, accounts and metrics
// passed straight in as AdminDeps, with a controllable clock. Only tests import this file.

import { openSqliteStore } from "../../store/sqlite/mod.ts";
import { SettingsService } from "../../settings/mod.ts";
import { AccountService } from "../../accounts/mod.ts";
import { LoginThrottle } from "../../auth/mod.ts";
import { createRelayMetrics } from "../../metrics/mod.ts";
import type { AdminDeps } from "../backend.ts";
import { createStatusProvider } from "../status.ts";

export const ADMIN_TOKEN = "correct-horse-battery-staple-0123456789";
export const DEFAULT_QUOTA = 500 * 1024 * 1024;

export async function adminServices(
  overrides: Partial<AdminDeps> = {},
  options: { startAt?: number } = {},
) {
  const store = openSqliteStore(":memory:");
  const settings = new SettingsService({ store });
  await settings.load();
  const clock = { now: options.startAt ?? 1_700_000_000_000 };
  const now = () => clock.now;
  const accounts = new AccountService({
    store,
    settings,
    domain: "example.org",
    limits: {
      usernameMinLength: 3,
      usernameMaxLength: 32,
      passwordMinLength: 9,
      maxCreationsPerIpPerHour: 0,
    },
    now,
    sleep: () => Promise.resolve(),
  });
  const metrics = createRelayMetrics({ version: "0.1.0-test", now });
  const sleeps: number[] = [];
  const deps: AdminDeps = {
    adminToken: () => ADMIN_TOKEN,
    accounts,
    settings,
    store,
    status: createStatusProvider({
      version: "0.1.0-test",
      startedAt: clock.now - 3_723_000,
      metrics,
      store,
      irohUrl: () => "https://example.org",
      now,
    }),
    certificates: () => [],
    defaultQuotaBytes: DEFAULT_QUOTA,
    metrics,
    now,
    loginThrottle: new LoginThrottle({ now }),
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    ...overrides,
  };
  return {
    store,
    settings,
    accounts,
    metrics,
    clock,
    sleeps,
    deps,
    [Symbol.dispose]: () => store.close(),
  };
}

/** The handler info Hono sees as c.env for a request from `ip`. */
export function fromAddress(ip = "198.51.100.9") {
  return { remoteAddr: { hostname: ip, port: 40000, transport: "tcp" as const } };
}

/** A request helper for app.request() with the admin token and JSON bodies. */
export function client(
  app: { request: (path: string, init: RequestInit, env: unknown) => Response | Promise<Response> },
) {
  return (method: string, path: string, body?: unknown, token = ADMIN_TOKEN, ip?: string) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    return app.request(
      `/api/admin${path}`,
      {
        method,
        headers,
        body: body === undefined
          ? undefined
          : typeof body === "string"
          ? body
          : JSON.stringify(body),
      },
      fromAddress(ip),
    );
  };
}
