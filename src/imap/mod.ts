export { startImapServer } from "./server.ts";
export type { ImapServerOptions } from "./server.ts";
export { ImapSession } from "./session.ts";
export type {
  AppendUpload,
  ImapAuthResult,
  ImapBackend,
  ImapChange,
  ImapMailboxes,
  ImapMetadata,
  ImapServerConfig,
  ImapUser,
  SmallBody,
  StoredBody,
} from "./backend.ts";
