// Public surface of the encryption policy: verdicts on raw messages for the SMTP and /mxdeliv
// edges (chatmail filtermail rules plus one reading, see gate.ts), streaming or whole-buffer.

export {
  type AcceptKind,
  createGate,
  type Gate,
  type GateOptions,
  type GateResult,
  type RejectReason,
  type Verdict,
} from "./gate.ts";
export { checkIncoming, checkOutgoing, type GateInput } from "./encryption_gate.ts";
export { exactValue, normalizeEnvelopeAddress } from "./message_kinds.ts";
export { ArmorChecker, checkArmoredPayload } from "./armor_check.ts";
export { checkOpenpgpPacketStream, PacketWalker } from "./openpgp_packets.ts";
export { fromHeaderAddress, strictFromAddress } from "./sender_identity.ts";
