// Admin API client: JSON over fetch with the bearer token; errors carry the HTTP status and the
// server's {"error"} text.

export const API_BASE = "/api/admin";

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  body?: unknown;
  signal?: AbortSignal;
}

export async function apiRequest<T>(
  token: string,
  path: string,
  options: RequestOptions = {},
): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(API_BASE + path, {
      method: options.method ?? "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, "Cannot reach the relay: check the connection");
  }
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text.slice(0, 200) };
    }
  }
  if (!res.ok) {
    const message = (data as { error?: string } | null)?.error ??
      `Request failed with status ${res.status}`;
    throw new ApiError(res.status, message);
  }
  return data as T;
}

/** Shapes returned by the API (snake_case, times in Unix ms). */
export interface Status {
  version: string;
  started_at: number;
  uptime_seconds: number;
  accounts: number;
  connections: Record<string, number>;
  idle_sessions: number;
  queue_length: number;
  messages_per_minute: { in: number; out: number };
  history: { minute: number; in: number; out: number }[];
  /** The iroh relay offered to clients (url null: none) and the embedded relay's counters. */
  iroh: {
    url: string | null;
    clients: number;
    relayed_packets: number;
    relayed_bytes: number;
    dropped: number;
  };
}

export interface Account {
  email: string;
  blocked: boolean;
  created_at: number;
  last_login_at: number | null;
  used_bytes: number;
  quota_bytes: number;
  quota_is_default: boolean;
  password?: string;
}

export interface Page<T> {
  items: T[];
  total: number;
  offset: number;
  limit: number;
}

export interface Token {
  token: string;
  max_uses: number;
  uses: number;
  expires_at: number | null;
  created_at: number;
  comment: string;
  status: "active" | "exhausted" | "expired";
}

export interface QueueEntry {
  id: number;
  sender: string;
  size: number;
  created_at: number;
  recipients: {
    recipient: string;
    domain: string;
    status: string;
    attempts: number;
    next_attempt_at: number;
    last_error: string | null;
    updated_at: number;
  }[];
}

/** One destination domain of the outbound queue (GET /queue/destinations). */
export interface QueueDestination {
  domain: string;
  pending: number;
  deferred: number;
  oldest_at: number | null;
  next_attempt_at: number | null;
  last_error: string | null;
  /** "backoff": the peer does not answer and is retried later. */
  state: "open" | "backoff";
  /** Deliveries allowed at once now (slow start). */
  concurrency: number;
  active: number;
  retry_at: number | null;
}

export interface Setting {
  key: string;
  value: string | null;
  default: string | null;
  doc: string;
  kind: string;
  values?: string[];
  secret?: boolean;
}

export interface Certificate {
  name: string;
  subject?: string;
  issuer?: string;
  names?: string[];
  valid_from?: number;
  valid_to?: number;
  days_left?: number;
  self_signed?: boolean;
  error?: string;
}
