// Public surface of the encryption policy: pure verdicts on raw messages for the SMTP and
// /mxdeliv edges (chatmail filtermail rules, see docs in each file).

export {
  type AcceptKind,
  checkIncoming,
  checkOutgoing,
  type GateInput,
  type GateResult,
  type RejectReason,
  type Verdict,
} from "./encryption_gate.ts";
export {
  isEncryptedMessage,
  isMailerDaemonReport,
  isSecureJoinRequest,
  isSelfSentAutocryptSetup,
  normalizeEnvelopeAddress,
} from "./message_kinds.ts";
export { checkArmoredPayload, checkOpenpgpPacketStream } from "./openpgp_packets.ts";
export { fromHeaderAddress } from "./sender_identity.ts";
