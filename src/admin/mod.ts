// Public surface of the admin edge: the API and SPA sub-app, its dependencies, and the helpers the
// composition root and the CLI reuse (status figures, registration tokens).

export { ADMIN_API_BASE, createAdminApi, createAdminApp } from "./app.ts";
export type {
  AdminAccounts,
  AdminDeps,
  AdminSettingInfo,
  AdminSettingKey,
  AdminSettings,
  AdminStatus,
  AdminStore,
} from "./backend.ts";
export { createStatusProvider } from "./status.ts";
export type { InstanceFigures, StatusSources } from "./status.ts";
export {
  createRegistrationToken,
  randomToken,
  tokenJson,
  tokenStatus,
} from "./registration_tokens.ts";
export type { NewTokenInput, TokenStatus } from "./registration_tokens.ts";
export { requireAdmin, tokensMatch } from "./require_admin.ts";
export type { RequireAdminOptions } from "./require_admin.ts";
export { createSpaApp, SPA_CSP } from "./spa.ts";
export type { WebAssets } from "./spa.ts";
