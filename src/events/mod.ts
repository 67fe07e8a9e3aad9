export { EventBus } from "./bus.ts";
export type { RelayEvent, RelayEventHandler } from "./bus.ts";
