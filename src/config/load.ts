// Loads the configuration: defaults < TOML file < environment (TERN_*) < flags. Every problem is
// collected and reported together with its key; unknown keys only warn.

import { isIP } from "node:net";
import { parse as parseToml } from "smol-toml";
import { parseRange } from "../net/public_address.ts";
import { parseIp } from "../net/ip.ts";
import {
  DEV_LISTEN_DEFAULTS,
  envName,
  FIELD_BY_KEY,
  FIELDS,
  LISTEN_DEFAULTS,
  LISTENERS,
} from "./schema.ts";
import type { Field, ListenerName } from "./schema.ts";

export interface Config {
  /** As configured: "example.org" or "192.0.2.1". */
  domain: string;
  /** As used in addresses: "example.org" or "[192.0.2.1]". */
  mailDomain: string;
  isIpDomain: boolean;
  hostname: string;
  dataDir: string;
  /** sqlite: data_dir/tern.db; postgres: the database at databaseUrl (shared by instances). */
  store: "sqlite" | "postgres";
  databaseUrl: string;
  log: "off" | "info" | "debug";
  dev: boolean;
  /** "host:port" per listener; "" disables it. */
  listen: Record<ListenerName, string>;
  tlsCert: string;
  tlsKey: string;
  /** TLS policy of the mail listeners. */
  tlsPolicy: {
    /** Port 25 refuses MAIL before STARTTLS. */
    smtpRequireStarttls: boolean;
    smtpMinVersion: "TLSv1.2" | "TLSv1.3";
    /** 465, 587, 143, 993. */
    clientMinVersion: "TLSv1.2" | "TLSv1.3";
    /** 143 and 993: tern's own TLS 1.3 engine (node:tls for other clients), or node:tls. */
    imapEngine: "tern" | "node";
  };
  /** SIGTERM: time sessions get to finish before they are dropped. */
  shutdownGraceMs: number;
  acmeEmail: string;
  acmeDirectory: string;
  limits: {
    maxMessageBytes: number;
    maxMailboxBytes: number;
    sendPerMinute: number;
    sendBurst: number;
    maxRecipients: number;
    usernameMinLength: number;
    usernameMaxLength: number;
    passwordMinLength: number;
    maxConnectionsPerIp: number;
    maxConnections: number;
    httpHeaderTimeoutMs: number;
    jitMaxPerIpPerHour: number;
    irohMaxClients: number;
    /** Iroh relay connections per client address (IPv6: per /64). */
    irohMaxClientsPerIp: number;
    /** Bytes per second read from one iroh relay client; 0: no limit. */
    irohClientBytesPerSecond: number;
  };
  retention: {
    deleteMailsAfterDays: number;
    deleteLargeAfterDays: number;
    deleteInactiveUsersAfterDays: number;
    forgetExpungedAfterDays: number;
  };
  queueLifetimeMs: number;
  /** How long the outbound worker's claim on a recipient it sends holds without renewal. */
  outboundClaimLeaseMs: number;
  /** Deliveries at once to one destination. */
  maxDestinationConcurrency: number;
  dnsServer: string;
  /** Outbound delivery to non-public addresses: all of them, or these ranges. */
  outboundAllowPrivate: boolean;
  outboundAllowedNetworks: string[];
  pushUrl: string;
  /** Iroh relay: null runs the embedded one; "" offers none; else an external relay's URL. */
  irohRelay: string | null;
  /** Path of a JSON app versions document, or "". */
  appVersionsFile: string;
  turnSecret: string;
  turnPort: number;
  /** Address ranges ("10.0.0.0/8", "::1") TURN may relay to although not public. */
  turnAllowedPeers: string[];
  /** Address ranges TURN never relays to, besides the default non-public ones. */
  turnDeniedPeers: string[];
  adminContact: string;
  adminToken: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

export interface LoadOptions {
  /** TOML text of the config file (already read) and its name for messages. */
  fileText?: string;
  fileName?: string;
  env?: Record<string, string | undefined>;
  dev?: boolean;
  /** Highest precedence, e.g. from command-line flags. */
  overrides?: Record<string, unknown>;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

export function parseSize(v: unknown): number | null {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "bigint" && v >= 0n) return Number(v);
  if (typeof v !== "string") return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  if (!m || !(m[2].toLowerCase() in SIZE_UNITS)) return null;
  return Math.round(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
}

const DURATION_UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3600_000,
  d: 86400_000,
  w: 7 * 86400_000,
};

/** "36h", "90m", "2d", "1h30m", "1h 30m" → milliseconds; null when not a duration. */
export function parseDuration(v: unknown): number | null {
  if (typeof v !== "string") return null;
  const text = v.trim().toLowerCase();
  if (!/^(\d+(?:\.\d+)?\s*[smhdw]\s*)+$/.test(text)) return null;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)\s*([smhdw])/g)) {
    ms += Number(m[1]) * DURATION_UNITS[m[2]];
  }
  return Number.isSafeInteger(Math.round(ms)) ? Math.round(ms) : null;
}

function coerce(f: Field, raw: unknown, source: string, problems: string[]): unknown {
  const bad = (why: string) => {
    problems.push(
      `${f.key} (${source}): ${why}, got ${
        JSON.stringify(typeof raw === "bigint" ? Number(raw) : raw)
      }`,
    );
    return undefined;
  };
  const fromEnv = source.startsWith("env");
  switch (f.type) {
    case "int": {
      const n = typeof raw === "string" && fromEnv
        ? Number(raw)
        : typeof raw === "bigint"
        ? Number(raw)
        : raw;
      if (typeof n !== "number" || !Number.isSafeInteger(n)) return bad("expected an integer");
      if (f.min !== undefined && n < f.min) return bad(`must be at least ${f.min}`);
      if (f.max !== undefined && n > f.max) return bad(`must be at most ${f.max}`);
      return n;
    }
    case "size": {
      const n = parseSize(raw);
      if (n === null) return bad('expected a size like 31457280, "30M" or "1G"');
      if (f.min !== undefined && n < f.min) return bad(`must be at least ${f.min} bytes`);
      return n;
    }
    case "duration": {
      const n = parseDuration(raw);
      if (n === null) return bad('expected a duration like "36h", "90m" or "2d"');
      if (f.min !== undefined && n < f.min) return bad(`must be at least ${f.min / 1000} s`);
      return n;
    }
    case "bool": {
      if (typeof raw === "boolean") return raw;
      if (fromEnv && /^(true|false|1|0)$/i.test(String(raw))) {
        return /^(true|1)$/i.test(String(raw));
      }
      return bad("expected true or false");
    }
    case "enum":
      if (typeof raw !== "string" || !f.values!.includes(raw)) {
        return bad(`expected one of ${f.values!.join(", ")}`);
      }
      return raw;
    case "address":
      if (typeof raw !== "string" || (raw !== "" && !isIpAndPort(raw))) {
        return bad('expected an IP address with an optional port, like "192.0.2.53" or "[::1]:53"');
      }
      return raw;
    case "url":
      if (typeof raw !== "string" || (raw !== "" && !URL.canParse(raw))) {
        return bad("expected a URL");
      }
      return raw;
    default:
      if (typeof raw !== "string") return bad("expected a string");
      return raw;
  }
}

const HOST_NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9])?)*$/;

/** "192.0.2.1", "192.0.2.1:53", "2001:db8::1", "[2001:db8::1]:53" (port 1 to 65535). */
function isIpAndPort(s: string): boolean {
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s) ?? /^([\d.]+)(?::(\d{1,5}))?$/.exec(s) ??
    [s, s, undefined];
  const port = m[2] === undefined ? 53 : Number(m[2]);
  return isIP(m[1]) !== 0 && port >= 1 && port <= 65535;
}

function isIpv4(s: string): boolean {
  return parseIp(s)?.length === 4;
}

/** Four numbers with dots that are no IPv4 address ("010.0.0.1", "1.2.3.300"). */
function badQuad(s: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(s) && !isIpv4(s);
}

export function loadConfig(options: LoadOptions = {}): { config: Config; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  const values = new Map<string, unknown>();
  /** Keys given in the file, the environment or flags (not defaults). */
  const explicit = new Set<string>();
  const listen: Record<string, string> = {
    ...(options.dev ? DEV_LISTEN_DEFAULTS : LISTEN_DEFAULTS),
  };
  for (const f of FIELDS) {
    values.set(f.key, f.type === "duration" ? parseDuration(f.default) : f.default);
  }
  if (options.dev) {
    values.set("domain", "127.0.0.1");
    values.set("data_dir", "./data");
    values.set("jit_max_per_ip_per_hour", 0);
    // Calls between apps on this machine go through TURN to loopback peers.
    values.set("turn_allowed_peers", "127.0.0.0/8, ::1");
  }
  const setListen = (name: string, raw: unknown, source: string) => {
    if (!(LISTENERS as readonly string[]).includes(name)) {
      warnings.push(
        `Unknown listener "${name}" (${source}) ignored; known: ${LISTENERS.join(", ")}`,
      );
      return;
    }
    if (raw === false || raw === "") {
      listen[name] = "";
      return;
    }
    if (
      typeof raw !== "string" || !/^(\[[0-9a-f:.]+\]|[^:\s]*):\d{1,5}$/i.test(raw) ||
      Number(raw.split(":").pop()) > 65535
    ) {
      problems.push(
        `listen.${name} (${source}): expected "host:port" or "" to disable, got ${
          JSON.stringify(raw)
        }`,
      );
      return;
    }
    listen[name] = raw;
  };

  if (options.fileText !== undefined) {
    const src = options.fileName ?? "config file";
    let doc: Record<string, unknown> = {};
    try {
      doc = parseToml(options.fileText) as Record<string, unknown>;
    } catch (err) {
      // smol-toml's message goes on with an excerpt of the file; its position is in line/column.
      const { line, column } = err as { line?: unknown; column?: unknown };
      const at = typeof line === "number" && typeof column === "number" ? `:${line}:${column}` : "";
      throw new ConfigError([
        `${src}${at}: cannot parse TOML: ${(err as Error).message.split("\n")[0]}`,
      ]);
    }
    for (const [key, raw] of Object.entries(doc)) {
      if (key === "listen") {
        if (raw && typeof raw === "object" && !Array.isArray(raw) && !(raw instanceof Date)) {
          for (const [name, v] of Object.entries(raw)) setListen(name, v, src);
        } else {
          problems.push(
            `listen (${src}): expected a [listen] table of "host:port" per listener, got ${
              JSON.stringify(raw)
            }`,
          );
        }
        continue;
      }
      const f = FIELD_BY_KEY.get(key);
      if (!f) {
        warnings.push(`Unknown key "${key}" in ${src} ignored`);
        continue;
      }
      const v = coerce(f, raw, src, problems);
      if (v !== undefined) values.set(key, v);
      explicit.add(key);
    }
  }

  const env = options.env ?? {};
  for (const f of FIELDS) {
    const raw = env[envName(f.key)];
    if (raw === undefined) continue;
    const v = coerce(f, raw, `env ${envName(f.key)}`, problems);
    if (v !== undefined) values.set(f.key, v);
    explicit.add(f.key);
  }
  for (const name of LISTENERS) {
    const raw = env[envName("listen_" + name)];
    if (raw !== undefined) setListen(name, raw, `env ${envName("listen_" + name)}`);
  }
  for (const [key, raw] of Object.entries(options.overrides ?? {})) {
    if (key.startsWith("listen.")) {
      setListen(key.slice(7), raw, "flag");
      continue;
    }
    const f = FIELD_BY_KEY.get(key);
    if (!f) {
      problems.push(`Unknown setting "${key}" (flag)`);
      continue;
    }
    const v = coerce(f, raw, "flag", problems);
    if (v !== undefined) values.set(key, v);
    explicit.add(key);
  }

  const get = <T>(k: string) => values.get(k) as T;
  let domain = (get<string | null>("domain") ?? "").trim().toLowerCase();
  if (!domain) problems.push("domain: required (the mail domain, or the server's IPv4 address)");
  domain = domain.replace(/^\[|\]$/g, "");
  if (badQuad(domain)) {
    problems.push(
      `domain: not an IPv4 address (0-255 each, no leading zeros), got ${JSON.stringify(domain)}`,
    );
  } else if (domain && !isIpv4(domain) && !HOST_NAME.test(domain)) {
    problems.push(`domain: not a valid domain name or IPv4 address, got ${JSON.stringify(domain)}`);
  }
  const hostname = (get<string | null>("hostname") ?? "").trim().toLowerCase();
  if (badQuad(hostname) || (hostname && !isIpv4(hostname) && !HOST_NAME.test(hostname))) {
    problems.push(`hostname: not a valid host name, got ${JSON.stringify(hostname)}`);
  }
  // Empty would put the database, keys and bodies into the current directory (/ under systemd).
  if (!get<string>("data_dir").trim()) {
    problems.push("data_dir: required (the directory of the database, keys and bodies)");
  }
  const irohRelay = get<string | null>("iroh_relay")?.trim() ?? null;
  if (irohRelay && !/^https?:\/\/[^\s/?#]+(\/[^\s]*)?$/i.test(irohRelay)) {
    problems.push(`iroh_relay: expected an http(s) URL or "", got ${JSON.stringify(irohRelay)}`);
  }
  const databaseUrl = get<string>("database_url").trim();
  if (get<string>("store") === "postgres") {
    if (!databaseUrl) {
      problems.push(
        'database_url: required with store = "postgres" (postgres://user:password@host/db)',
      );
    } else if (!/^postgres(ql)?:\/\/[^\s]+$/i.test(databaseUrl) || !URL.canParse(databaseUrl)) {
      problems.push('database_url: expected a URL like "postgres://user:password@host:5432/tern"');
    }
  }
  if (get<number>("username_min_length") > get<number>("username_max_length")) {
    problems.push("username_min_length: must not exceed username_max_length");
  }
  const ranges: Record<string, string[]> = {};
  for (const key of ["turn_allowed_peers", "turn_denied_peers", "outbound_allowed_networks"]) {
    ranges[key] = get<string>(key).split(/[\s,]+/).filter(Boolean);
    for (const r of ranges[key]) {
      if (
        !/^[0-9a-f:.]+(\/\d{1,3})?$/i.test(r) ||
        (key === "outbound_allowed_networks" && !isRange(r))
      ) {
        problems.push(`${key}: expected address ranges like "10.8.0.0/16, fd00::/64", got ${r}`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  let queueLifetimeMs = get<number>("queue_lifetime");
  if (explicit.has("queue_lifetime_hours")) {
    const hours = get<number>("queue_lifetime_hours");
    if (explicit.has("queue_lifetime")) {
      warnings.push("queue_lifetime_hours is deprecated and ignored: queue_lifetime is set");
    } else {
      queueLifetimeMs = hours * 3600_000;
      warnings.push(`queue_lifetime_hours is deprecated: use queue_lifetime = "${hours}h"`);
    }
  }

  const isIpDomain = isIpv4(domain);
  const config: Config = {
    domain,
    mailDomain: isIpDomain ? `[${domain}]` : domain,
    isIpDomain,
    hostname: hostname || domain,
    dataDir: get<string>("data_dir"),
    store: get<Config["store"]>("store"),
    databaseUrl,
    log: get<Config["log"]>("log"),
    dev: options.dev ?? false,
    listen: listen as Record<ListenerName, string>,
    tlsCert: get("tls_cert"),
    tlsKey: get("tls_key"),
    tlsPolicy: {
      smtpRequireStarttls: get("smtp_require_starttls"),
      smtpMinVersion: `TLSv${get<string>("smtp_tls_min_version")}` as "TLSv1.2" | "TLSv1.3",
      clientMinVersion: `TLSv${get<string>("client_tls_min_version")}` as "TLSv1.2" | "TLSv1.3",
      imapEngine: get("imap_tls_engine"),
    },
    shutdownGraceMs: get<number>("shutdown_grace_seconds") * 1000,
    acmeEmail: get("acme_email"),
    acmeDirectory: get("acme_directory"),
    limits: {
      maxMessageBytes: get("max_message_size"),
      maxMailboxBytes: get("max_mailbox_size"),
      sendPerMinute: get("max_user_send_per_minute"),
      sendBurst: get("max_user_send_burst_size"),
      maxRecipients: get("max_recipients"),
      usernameMinLength: get("username_min_length"),
      usernameMaxLength: get("username_max_length"),
      passwordMinLength: get("password_min_length"),
      maxConnectionsPerIp: get("max_connections_per_ip"),
      maxConnections: get("max_connections"),
      httpHeaderTimeoutMs: get<number>("http_header_timeout") * 1000,
      jitMaxPerIpPerHour: get("jit_max_per_ip_per_hour"),
      irohMaxClients: get("iroh_max_clients"),
      irohMaxClientsPerIp: get("iroh_max_clients_per_ip"),
      irohClientBytesPerSecond: get("iroh_client_rate"),
    },
    retention: {
      deleteMailsAfterDays: get("delete_mails_after"),
      deleteLargeAfterDays: get("delete_large_after"),
      deleteInactiveUsersAfterDays: get("delete_inactive_users_after"),
      forgetExpungedAfterDays: get("forget_expunged_after"),
    },
    queueLifetimeMs,
    outboundClaimLeaseMs: get("outbound_claim_lease"),
    maxDestinationConcurrency: get("max_destination_concurrency"),
    dnsServer: get("dns_server"),
    outboundAllowPrivate: get("outbound_allow_private"),
    outboundAllowedNetworks: ranges.outbound_allowed_networks,
    pushUrl: get("push_url"),
    irohRelay,
    appVersionsFile: get("app_versions_file"),
    turnSecret: get("turn_secret"),
    turnPort: get("turn_port"),
    turnAllowedPeers: ranges.turn_allowed_peers,
    turnDeniedPeers: ranges.turn_denied_peers,
    adminContact: get("admin_contact"),
    adminToken: get("admin_token"),
  };
  return { config: deepFreeze(config), warnings };
}

function isRange(text: string): boolean {
  try {
    parseRange(text);
    return true;
  } catch {
    return false;
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
