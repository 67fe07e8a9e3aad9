export { ConfigError, loadConfig, parseDuration, parseSize } from "./load.ts";
export type { Config, LoadOptions } from "./load.ts";
export { DEV_LISTEN_DEFAULTS, envName, FIELDS, LISTEN_DEFAULTS, LISTENERS } from "./schema.ts";
export type { Field, ListenerName } from "./schema.ts";
