export { PushService, retryDelaySeconds, TOKEN_LIFETIME_MS } from "./service.ts";
export type { PushOptions } from "./service.ts";
