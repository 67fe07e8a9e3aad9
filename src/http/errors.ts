// Error → HTTP answer, in one place for the public site and the admin API: RelayError codes map
// totally to statuses; unexpected errors are logged and answered generically.

import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ErrorCode } from "../errors.ts";
import { isRelayError } from "../errors.ts";
import type { Logger } from "../log/mod.ts";
import { htmlPage } from "./pages/layout.ts";

export const STATUS_FOR: Record<ErrorCode, ContentfulStatusCode> = {
  auth_failed: 401,
  account_blocked: 403,
  account_exists: 409,
  account_not_found: 404,
  registration_closed: 403,
  invalid_credentials_policy: 422,
  mailbox_not_found: 404,
  mailbox_exists: 409,
  mailbox_invalid: 400,
  message_not_found: 404,
  quota_exceeded: 507,
  message_too_large: 413,
  rate_limited: 429,
  invalid_argument: 400,
  not_found: 404,
  conflict: 409,
  storage_unavailable: 503,
  internal: 500,
};

/** A JSON error answer: `{"error": message}`. */
export function jsonError(c: Context, status: ContentfulStatusCode, message: string): Response {
  return c.json({ error: message }, status);
}

/** Status and client text for any thrown value; `expected` is false for bugs and outages. */
export function describeError(
  err: unknown,
): { status: ContentfulStatusCode; message: string; expected: boolean } {
  if (isRelayError(err)) {
    const status = STATUS_FOR[err.code];
    if (status >= 500) {
      return {
        status,
        message: status === 503 ? "service unavailable" : "internal error",
        expected: false,
      };
    }
    return { status, message: err.message, expected: true };
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    return { status, message: err.message || defaultText(status), expected: status < 500 };
  }
  return { status: 500, message: "internal error", expected: false };
}

function defaultText(status: number): string {
  return ({
    400: "bad request",
    401: "unauthorized",
    404: "not found",
    405: "method not allowed",
    413: "payload too large",
  } as Record<number, string>)[status] ?? "error";
}

/** Hono onError: JSON `{"error"}` with the mapped status; unexpected errors go to the log. */
export function createErrorHandler(log?: Logger): ErrorHandler {
  return (err, c) => {
    const d = describeError(err);
    if (!d.expected) {
      log?.error("http request failed", { method: c.req.method, path: c.req.path, err });
    }
    return jsonError(c, d.status, d.message);
  };
}

/** Paths answered in JSON (or plain text) rather than HTML pages. */
const API_PATHS = ["/api/", "/new", "/cgi-bin/", "/mxdeliv", "/metrics"];

export function isApiPath(path: string): boolean {
  return API_PATHS.some((p) =>
    p.endsWith("/") ? path.startsWith(p) : path === p || path.startsWith(p + "/")
  );
}

/** 404: JSON for API paths, a small HTML page for everything else. */
export const notFound: NotFoundHandler = (c) => {
  if (isApiPath(c.req.path)) return jsonError(c, 404, "not found");
  return c.html(
    htmlPage({ title: "Not found", body: '<h1>Not found</h1><p><a href="/">Home</a></p>' }),
    404,
  );
};

/** 405 with an Allow header, JSON body. */
export function methodNotAllowed(c: Context, allow: string): Response {
  c.header("Allow", allow);
  return jsonError(c, 405, "method not allowed");
}
