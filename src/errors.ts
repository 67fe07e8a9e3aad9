// Domain errors shared by every layer. Protocol edges map each code to their own wire answer.

export type ErrorCode =
  | "auth_failed"
  | "account_blocked"
  | "account_exists"
  | "account_not_found"
  | "registration_closed"
  | "invalid_credentials_policy"
  | "mailbox_not_found"
  | "mailbox_exists"
  | "mailbox_invalid"
  | "message_not_found"
  | "quota_exceeded"
  | "message_too_large"
  | "rate_limited"
  | "invalid_argument"
  | "not_found"
  | "conflict"
  | "storage_unavailable"
  | "internal";

export class RelayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RelayError";
    this.code = code;
  }
}

export function isRelayError(e: unknown, code?: ErrorCode): e is RelayError {
  return e instanceof RelayError && (code === undefined || e.code === code);
}

/**
 * A storage failure that means the disk is full or the data directory read-only (SQLite's
 * SQLITE_FULL/SQLITE_READONLY, ENOSPC, EDQUOT, EROFS): temporary for the client, who retries.
 */
export function isStorageFull(err: unknown): boolean {
  const text = err instanceof Error
    ? `${err.message} ${(err as { code?: string }).code ?? ""}`
    : String(err);
  return /disk is full|database or disk is full|SQLITE_FULL|ENOSPC|EDQUOT|EROFS|readonly|read-only|No space left/i
    .test(text);
}

/**
 * A storage failure that means another process holds the database's lock (SQLite's SQLITE_BUSY
 * after its busy timeout, e.g. an operator's open write transaction): temporary for the client.
 */
export function isStorageBusy(err: unknown): boolean {
  const e = err as { errcode?: unknown; message?: unknown };
  return (typeof e?.errcode === "number" && (e.errcode & 0xff) === 5) ||
    /database is locked|SQLITE_BUSY/i.test(String(e?.message ?? err));
}
