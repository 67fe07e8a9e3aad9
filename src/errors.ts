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
