export { DnsError, systemResolver } from "./resolver.ts";
export type { DnsResolver, MxRecord } from "./resolver.ts";
export { isIpLiteral, route } from "./router.ts";
export type { Destination, Route } from "./router.ts";
export { dotStuff, sendSmtp, SmtpClientError } from "./smtp_client.ts";
export { postMxdeliv } from "./mxdeliv_client.ts";
export {
  DKIM_SELECTOR,
  dkimDnsRecord,
  generateDkimKey,
  signMessage,
  verifyAlignedHeader,
  verifyAlignedSignature,
} from "./dkim.ts";
export type { BodyHashes, DkimKey } from "./dkim.ts";
export { type BodyHash, DkimBodyHasher, DkimStream } from "./dkim_body.ts";
export { buildBounce } from "./bounce.ts";
export { OutboundService, retryDelayMs } from "./outbound.ts";
export type { OutboundOptions } from "./outbound.ts";
export { httpsPolicyFetcher, MtaSts, mxMatches, parsePolicy } from "./mta_sts.ts";
export type { MtaStsPolicy, PolicyFetcher } from "./mta_sts.ts";
