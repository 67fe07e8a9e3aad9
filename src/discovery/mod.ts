export { DEVICE_TOKEN, MetadataService } from "./metadata.ts";
export type { MetadataError, MetadataOptions } from "./metadata.ts";
