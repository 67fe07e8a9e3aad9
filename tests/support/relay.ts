// An in-process relay on ephemeral loopback ports with a fresh data directory and self-signed
// TLS: the fixture for protocol tests over real sockets.

import { loadConfig } from "../../src/config/mod.ts";
import { startRelay } from "../../src/app/relay.ts";
import type { Relay, RelayOptions } from "../../src/app/relay.ts";
import type { DnsResolver } from "../../src/federation/mod.ts";
import { silentLogger } from "../../src/log/mod.ts";

export interface TestRelay {
  relay: Relay;
  dir: string;
  /** "host:port" of a listener. */
  addr(name: "smtp" | "submission" | "submissions" | "imap" | "imaps" | "http" | "https"): {
    hostname: string;
    port: number;
  };
  caPem: string;
  domain: string;
}

export async function withRelay(
  fn: (t: TestRelay) => Promise<void>,
  options: {
    toml?: string;
    overrides?: Record<string, unknown>;
    relay?: RelayOptions;
  } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tern-test-" });
  const { config } = loadConfig({
    dev: true,
    fileText: options.toml ?? "",
    overrides: {
      data_dir: `${dir}/data`,
      "listen.smtp": "127.0.0.1:0",
      "listen.submission": "127.0.0.1:0",
      "listen.submissions": "127.0.0.1:0",
      "listen.imap": "127.0.0.1:0",
      "listen.imaps": "127.0.0.1:0",
      "listen.http": "127.0.0.1:0",
      "listen.https": "",
      "listen.metrics": "",
      ...options.overrides,
    },
  });
  const relay = await startRelay(config, {
    log: silentLogger,
    dns: NO_DNS,
    ...options.relay,
  });
  try {
    await fn({
      relay,
      dir,
      caPem: relay.tls.caPem!,
      domain: config.mailDomain,
      addr(name) {
        const a = relay.addresses[name];
        if (!a) throw new Error(`listener ${name} is not running`);
        const i = a.lastIndexOf(":");
        return { hostname: a.slice(0, i), port: Number(a.slice(i + 1)) };
      },
    });
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Creates an account with the given password (bypassing JIT), returning its address. */
export async function createAccount(t: TestRelay, local: string, password = "password-123456") {
  const address = `${local}@${t.domain}`;
  await t.relay.services.accounts.create(address, password);
  return { address, password };
}

/** A resolver that knows nothing: the default in tests (nothing resolves here anyway). */
export const NO_DNS: DnsResolver = {
  mx: () => Promise.resolve([]),
  addresses: () => Promise.resolve([]),
  txt: () => Promise.resolve([]),
};

/** A resolver answering from fixed tables. */
export function fakeDns(tables: {
  mx?: Record<string, { preference: number; exchange: string }[]>;
  addresses?: Record<string, string[]>;
  txt?: Record<string, string[]>;
}): DnsResolver {
  return {
    mx: (d) => Promise.resolve(tables.mx?.[d] ?? []),
    addresses: (h) => Promise.resolve(tables.addresses?.[h] ?? []),
    txt: (n) => Promise.resolve(tables.txt?.[n] ?? []),
  };
}
