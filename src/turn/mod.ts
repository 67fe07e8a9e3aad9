export { startTurnServer } from "./server.ts";
export {
  DENIED_IPV4,
  DENIED_IPV6,
  isRelayablePeer,
  parseRange,
  PeerPolicy,
} from "./peer_policy.ts";
export type { PeerPolicyOptions } from "./peer_policy.ts";
export type { TurnServer, TurnServerOptions, TurnStats } from "./server.ts";
export {
  DEFAULT_CREDENTIAL_TTL_SEC,
  longTermKey,
  turnCredentials,
  turnKeyFor,
  turnMetadataValue,
  turnPassword,
  usernameExpiry,
} from "./credentials.ts";
export type { TurnCredentials } from "./credentials.ts";
