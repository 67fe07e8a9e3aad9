// The configuration schema: one table of keys with type, default, environment variable and doc.
// Defaults follow the chatmail relay (chatmail.ini). README config docs are generated from it.

export type FieldType =
  | "string"
  | "int"
  | "size"
  | "duration"
  | "bool"
  | "enum"
  | "address"
  | "url";

export interface Field {
  key: string;
  type: FieldType;
  default: string | number | boolean | null;
  doc: string;
  values?: readonly string[];
  /** Minimum for int/size (bytes)/duration (milliseconds). */
  min?: number;
  /** Maximum for int. */
  max?: number;
}

const MiB = 1024 * 1024;

export const LISTENERS = [
  "smtp",
  "submission",
  "submissions",
  "imap",
  "imaps",
  "http",
  "https",
  "metrics",
] as const;
export type ListenerName = (typeof LISTENERS)[number];

/** Production listen defaults ("" = disabled): dual-stack, every IPv6 and IPv4 address. */
export const LISTEN_DEFAULTS: Record<ListenerName, string> = {
  smtp: "[::]:25",
  submission: "[::]:587",
  submissions: "[::]:465",
  imap: "[::]:143",
  imaps: "[::]:993",
  http: "[::]:80",
  https: "[::]:443",
  metrics: "",
};

/** Dev-mode listen defaults: loopback, unprivileged ports. */
export const DEV_LISTEN_DEFAULTS: Record<ListenerName, string> = {
  smtp: "127.0.0.1:2525",
  submission: "127.0.0.1:2587",
  submissions: "127.0.0.1:2465",
  imap: "127.0.0.1:2143",
  imaps: "127.0.0.1:2993",
  http: "127.0.0.1:8080",
  https: "127.0.0.1:8443",
  metrics: "127.0.0.1:9100",
};

export const FIELDS: readonly Field[] = [
  {
    key: "domain",
    type: "string",
    default: null,
    doc: "Mail domain; an IPv4 address makes an IP relay (addresses user@[ip])",
  },
  {
    key: "hostname",
    type: "string",
    default: null,
    doc: "Host name of this server (greeting, TLS names); defaults to domain",
  },
  {
    key: "data_dir",
    type: "string",
    default: "/var/lib/tern",
    doc: "Directory for the database, keys and certificates",
  },
  {
    key: "store",
    type: "enum",
    values: ["sqlite", "postgres"],
    default: "sqlite",
    doc:
      "Where the relay keeps its data: sqlite (one file in data_dir) or postgres (database_url; several instances may share it)",
  },
  {
    key: "database_url",
    type: "string",
    default: "",
    doc:
      'PostgreSQL connection URL for store = "postgres" ("postgres://user:password@host:5432/tern", "?sslmode=require" for TLS)',
  },
  {
    key: "log",
    type: "enum",
    values: ["off", "info", "debug"],
    default: "off",
    doc:
      "off keeps No-Log: nothing about users is written; info/debug write structured lines to stderr",
  },
  {
    key: "tls_cert",
    type: "string",
    default: "",
    doc: "PEM certificate chain; empty: a local CA and certificate are generated",
  },
  { key: "tls_key", type: "string", default: "", doc: "PEM private key for tls_cert" },
  {
    key: "smtp_require_starttls",
    type: "bool",
    default: true,
    doc:
      "Port 25: MAIL only after STARTTLS, as the reference relay (Postfix security level encrypt)",
  },
  {
    key: "smtp_tls_min_version",
    type: "enum",
    values: ["1.2", "1.3"],
    default: "1.2",
    doc: "Oldest TLS version on port 25 (STARTTLS from other relays)",
  },
  {
    key: "client_tls_min_version",
    type: "enum",
    values: ["1.2", "1.3"],
    default: "1.3",
    doc: "Oldest TLS version on the client ports 465, 587, 143 and 993",
  },
  {
    key: "imap_tls_engine",
    type: "enum",
    values: ["tern", "node"],
    default: "tern",
    doc:
      "TLS on 143 and 993: tern (its own TLS 1.3, node:tls for other clients; ~20 KiB less per idle connection) or node (node:tls for all)",
  },
  { key: "acme_email", type: "string", default: "", doc: "Contact e-mail for ACME certificates" },
  {
    key: "acme_directory",
    type: "url",
    default: "https://acme-v02.api.letsencrypt.org/directory",
    doc: "ACME directory (Let's Encrypt; its staging directory or another CA)",
  },
  {
    key: "max_message_size",
    type: "size",
    default: 30 * MiB,
    min: 1024,
    doc: "Largest message accepted, bytes (or 30M, 1G)",
  },
  {
    key: "max_mailbox_size",
    type: "size",
    default: 500 * MiB,
    min: 1024,
    doc: "Per-account quota, bytes (or 500M)",
  },
  {
    key: "max_user_send_per_minute",
    type: "int",
    default: 60,
    min: 1,
    doc: "Sustained submissions per user and minute",
  },
  {
    key: "max_user_send_burst_size",
    type: "int",
    default: 10,
    min: 1,
    doc: "Submissions a user may send back-to-back",
  },
  { key: "max_recipients", type: "int", default: 1000, min: 1, doc: "Recipients per message" },
  {
    key: "username_min_length",
    type: "int",
    default: 9,
    min: 1,
    doc: "Shortest local part for new accounts",
  },
  {
    key: "username_max_length",
    type: "int",
    default: 9,
    min: 1,
    doc: "Longest local part for new accounts; also the /new length",
  },
  {
    key: "password_min_length",
    type: "int",
    default: 9,
    min: 1,
    doc: "Shortest password for new accounts",
  },
  {
    key: "delete_mails_after",
    type: "int",
    default: 20,
    min: 1,
    doc: "Days after which every message is deleted",
  },
  {
    key: "delete_large_after",
    type: "int",
    default: 7,
    min: 1,
    doc: "Days after which messages over 200 kB are deleted",
  },
  {
    key: "delete_inactive_users_after",
    type: "int",
    default: 90,
    min: 1,
    doc: "Days without login after which an account is deleted",
  },
  {
    key: "forget_expunged_after",
    type: "int",
    default: 30,
    min: 1,
    doc:
      "Days after which the record of an expunged message is forgotten (a device offline longer resyncs with a conservative answer)",
  },
  {
    key: "max_connections_per_ip",
    type: "int",
    default: 200,
    min: 1,
    doc: "Concurrent connections per client address (IPv6: per /64) and listener",
  },
  {
    key: "max_connections",
    type: "int",
    default: 20000,
    min: 1,
    doc: "Concurrent connections per listener",
  },
  {
    key: "shutdown_grace_seconds",
    type: "int",
    default: 10,
    min: 0,
    doc: "On SIGTERM: how long open sessions may finish their command before they are dropped",
  },
  {
    key: "http_header_timeout",
    type: "int",
    default: 10,
    min: 1,
    doc: "Seconds an HTTP(S) client has to send a request's head (also the keep-alive idle time)",
  },
  {
    key: "jit_max_per_ip_per_hour",
    type: "int",
    default: 60,
    min: 0,
    doc: "New accounts per client address (IPv6: per /64) and hour; 0: no limit",
  },
  {
    key: "queue_lifetime",
    type: "duration",
    default: "120h",
    min: 60_000,
    doc: 'How long outbound mail is retried before it bounces ("36h", "90m", "2d")',
  },
  {
    key: "queue_lifetime_hours",
    type: "int",
    default: null,
    min: 1,
    doc: "Deprecated: queue_lifetime in whole hours (used when queue_lifetime is not set)",
  },
  {
    key: "outbound_claim_lease",
    type: "duration",
    default: "5m",
    min: 3_000,
    doc:
      "How long a recipient being sent stays claimed by the outbound worker sending it, renewed while it sends; with several instances, mail in flight on one that died is sent again after this",
  },
  {
    key: "max_destination_concurrency",
    type: "int",
    default: 20,
    min: 1,
    doc: "Deliveries at once to one destination domain (slow start up to this)",
  },
  {
    key: "dns_server",
    type: "address",
    default: "",
    doc: 'DNS server "ip[:port]" for MX/TXT lookups; empty: the system resolver',
  },
  {
    key: "outbound_allow_private",
    type: "bool",
    default: false,
    doc:
      "Deliver to recipient domains and address literals at non-public addresses (loopback, private, link-local, CGNAT...); off: refused and bounced, so users cannot reach the operator's network",
  },
  {
    key: "outbound_allowed_networks",
    type: "string",
    default: "",
    doc:
      'Address ranges outbound delivery may reach although not public ("10.8.0.0/16, fd00::/64")',
  },
  {
    key: "push_url",
    type: "url",
    default: "https://notifications.delta.chat/notify",
    doc: "Delta Chat notification service",
  },
  {
    key: "iroh_relay",
    type: "string",
    default: null,
    doc:
      "Iroh relay for webxdc realtime: unset runs the embedded one on the HTTP(S) listeners; a URL offers that relay instead; empty offers none",
  },
  {
    key: "iroh_max_clients",
    type: "int",
    default: 1000,
    min: 1,
    doc: "Clients the embedded iroh relay serves at once; more are refused (503)",
  },
  {
    key: "iroh_max_clients_per_ip",
    type: "int",
    default: 100,
    min: 1,
    doc:
      "Clients the embedded iroh relay serves at once per client address (IPv6: per /64), handshakes included; more are refused (429)",
  },
  {
    key: "iroh_client_rate",
    type: "size",
    default: "2M",
    doc:
      "Bytes per second the iroh relay reads from one client (bursts of twice that); 0: no limit",
  },
  {
    key: "app_versions_file",
    type: "string",
    default: "",
    doc:
      "JSON file with the app versions offered as METADATA appversions; empty: the built-in list (the admin setting app_versions overrides both)",
  },
  {
    key: "turn_secret",
    type: "string",
    default: "",
    doc: "TURN REST shared secret; empty: generated and kept in data_dir",
  },
  {
    key: "turn_port",
    type: "int",
    default: 3478,
    min: 0,
    max: 65535,
    doc: "UDP port of the embedded TURN server; 0 disables it",
  },
  {
    key: "turn_allowed_peers",
    type: "string",
    default: "",
    doc:
      'Address ranges TURN relays to although they are not public ("10.8.0.0/16, fd00::/64"); dev: loopback',
  },
  {
    key: "turn_denied_peers",
    type: "string",
    default: "",
    doc: "Address ranges TURN never relays to, besides the non-public ones it always refuses",
  },
  {
    key: "admin_contact",
    type: "string",
    default: "",
    doc: "Operator contact, shown on the privacy page and as /shared/admin",
  },
  {
    key: "admin_token",
    type: "string",
    default: "",
    doc: "Admin API token; empty: kept in data_dir/admin_token",
  },
];

export const FIELD_BY_KEY: ReadonlyMap<string, Field> = new Map(FIELDS.map((f) => [f.key, f]));

export function envName(key: string): string {
  return "TERN_" + key.toUpperCase().replace(/\./g, "_");
}
