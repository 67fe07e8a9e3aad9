export { AccountService } from "./accounts.ts";
export { MemoryCreationRate } from "./accounts.ts";
export type { AccountLimits, AccountServiceOptions, CreationRate } from "./accounts.ts";
