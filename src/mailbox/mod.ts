export { MailboxService } from "./service.ts";
export type { MailboxServiceOptions } from "./service.ts";
