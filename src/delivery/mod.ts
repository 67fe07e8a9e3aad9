export { DeliveryService, domainOf, isValidAddress, NOT_ENCRYPTED, OK, reply } from "./service.ts";
export type {
  DeliveryAccounts,
  DeliveryLimits,
  DeliveryReport,
  DeliveryServiceOptions,
  Envelope,
  Reply,
} from "./service.ts";
export { SendRateLimiter } from "./rate_limit.ts";
export type { RateDecision, SendRate } from "./rate_limit.ts";
export { cleanStoredHeaders, cleanSubmittedHeaders } from "./header_cleanup.ts";
