// Public surface of the HTTP edge: the root app, the metrics app, the server runner and the
// error mapping shared with the admin API.

export { createHttpApp, createMetricsApp } from "./app.ts";
export type {
  ClientPorts,
  HttpAccounts,
  HttpConfig,
  HttpDeps,
  HttpSettingKey,
  HttpSettings,
  MetricsAppDeps,
  MxdelivAnswer,
  MxdelivDelivery,
  MxdelivEnvelope,
  MxdelivHandler,
  RateLimit,
} from "./backend.ts";
export {
  createErrorHandler,
  describeError,
  isApiPath,
  jsonError,
  methodNotAllowed,
  notFound,
  STATUS_FOR,
} from "./errors.ts";
export { clientAddress } from "./client_address.ts";
export { dcloginUrl, newAccountUrl, quote } from "./dclogin.ts";
export { TokenBuckets } from "./rate_limit.ts";
export { httpsRedirectApp } from "./https_redirect.ts";
export { startHttpServer } from "./server.ts";
export type { HttpRequestInfo, HttpServer, HttpServerOptions, TlsPems } from "./server.ts";
