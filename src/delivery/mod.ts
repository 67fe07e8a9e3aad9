export {
  deliveredEvent,
  DeliveryService,
  domainOf,
  isValidAddress,
  NOT_ENCRYPTED,
  OK,
  reply,
} from "./service.ts";
export type {
  DeliveryAccounts,
  DeliveryLimits,
  DeliveryReport,
  DeliveryServiceOptions,
  Envelope,
  MessageTransaction,
  OriginCheck,
  Reply,
} from "./service.ts";
export { type IntakeReader, MessageIntake, SLICE } from "./message_intake.ts";
export { SendRateLimiter } from "./rate_limit.ts";
export type { RateDecision, SendRate } from "./rate_limit.ts";
export { cleanStoredHeaders, cleanSubmittedHeaders } from "./header_cleanup.ts";
