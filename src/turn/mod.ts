export { isRelayablePeer, startTurnServer } from "./server.ts";
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
