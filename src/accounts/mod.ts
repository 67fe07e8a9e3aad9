export { AccountService } from "./accounts.ts";
export type { AccountLimits, AccountServiceOptions } from "./accounts.ts";
