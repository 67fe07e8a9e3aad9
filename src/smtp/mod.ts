export { startSmtpServer } from "./server.ts";
export type { SmtpServerOptions } from "./server.ts";
export { SmtpSession } from "./session.ts";
export type { SmtpSessionOptions } from "./session.ts";
export type {
  SmtpBackend,
  SmtpDataTransaction,
  SmtpEnvelope,
  SmtpReply,
  SmtpSessionHooks,
} from "./backend.ts";
