export { isSettingKey, SETTINGS, SettingsService, validateSetting } from "./settings.ts";
export type { SettingKey } from "./settings.ts";
