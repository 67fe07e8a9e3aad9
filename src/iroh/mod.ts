export {
  DEFAULT_TIMINGS,
  IrohRelay,
  LEGACY_RELAY_PATH,
  RELAY_PATH,
  relayUpgradeOf,
} from "./iroh_relay.ts";
export type { IrohMetrics, IrohRelayOptions, UpgradeRequest } from "./iroh_relay.ts";
export { PROTOCOL_VERSION } from "./client_info.ts";
export { advertisedRelayUrl, servesRelay } from "./advertised_url.ts";
export type { RelaySources } from "./advertised_url.ts";
export { irohProbeRoutes } from "./probe_routes.ts";
export { relayUpgradeHook, type UpgradeHook } from "./upgrade_hook.ts";
