export { DnsError, systemResolver } from "./resolver.ts";
export type { DnsResolver, MxRecord } from "./resolver.ts";
export { isIpLiteral, route } from "./router.ts";
export type { Destination, Route } from "./router.ts";
export { dotStuff, sendSmtp, SmtpReplyError, SmtpSession } from "./smtp_client.ts";
export { TransportError } from "./conn.ts";
export { HttpsPool } from "./https_client.ts";
export { trustedCas } from "./trust.ts";
export { DEFAULT_DEADLINES } from "./deadlines.ts";
export type { Deadlines } from "./deadlines.ts";
export { postMxdeliv } from "./mxdeliv_client.ts";
export {
  DKIM_SELECTOR,
  dkimDnsRecord,
  dkimSignatureField,
  generateDkimKey,
  signMessage,
  verifyAlignedHeader,
  verifyAlignedSignature,
} from "./dkim.ts";
export type { BodyHashes, DkimKey } from "./dkim.ts";
export { type BodyHash, DkimBodyHasher, DkimStream } from "./dkim_body.ts";
export { buildBounce } from "./bounce.ts";
export { bytesMessage, storedMessage } from "./outgoing_message.ts";
export type { OutgoingMessage } from "./outgoing_message.ts";
export { OutboundService } from "./outbound.ts";
export type { DestinationStatus, OutboundOptions } from "./outbound.ts";
export type { PeerPorts } from "./transport.ts";
export { DEFAULT_BACKOFF } from "./backoff.ts";
export type { BackoffPolicy } from "./backoff.ts";
export { httpsPolicyFetcher, MtaSts, mxMatches, parsePolicy } from "./mta_sts.ts";
export type { MtaStsPolicy, PolicyFetcher } from "./mta_sts.ts";
