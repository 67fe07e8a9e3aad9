// The encryption gate (filtermail outbound.rs / inbound.rs): decides per message whether it may
// pass. A rejection is an ordinary verdict; the SMTP edge turns it into the reply text.

import { type MimePart, parseMessage } from "../mime/mod.ts";
import {
  isEncryptedMessage,
  isMailerDaemonReport,
  isSecureJoinRequest,
  isSelfSentAutocryptSetup,
  normalizeEnvelopeAddress,
} from "./message_kinds.ts";
import { fromHeaderAddress } from "./sender_identity.ts";

export type RejectReason = "not_encrypted" | "from_mismatch" | "invalid_from" | "parse_error";

export type AcceptKind = "encrypted" | "securejoin" | "autocrypt_setup" | "mailer_daemon";

export type Verdict =
  | { accept: true; kind: AcceptKind }
  | { accept: false; reason: RejectReason; detail: string };

/** A verdict plus what the edge needs for its reply and for reinjection. */
export type GateResult = Verdict & {
  /** Lowercased address of the From header, when it has one. */
  fromAddress?: string;
  /** Incoming only: the envelope sender must become "<>" (it differs from the From address). */
  resetSender?: boolean;
};

export interface GateInput {
  /** Envelope sender (MAIL FROM), without angle brackets; "" for the null sender. */
  mailFrom: string;
  recipients: readonly string[];
  /** The message exactly as received in DATA. */
  message: Uint8Array;
}

type Identified = { root: MimePart; from: string } | { result: GateResult };

function identify(message: Uint8Array): Identified {
  const root = parseMessage(message);
  if (!root.headers.some((f) => f.name !== "")) {
    return { result: reject("parse_error", "Message has no header fields") };
  }
  const from = fromHeaderAddress(root);
  if (from === undefined) {
    const raw = root.headers.find((f) => f.name.toLowerCase() === "from")?.value ?? "";
    return { result: reject("invalid_from", `From header has no address: "${raw}"`) };
  }
  return { root, from };
}

function reject(reason: RejectReason, detail: string): GateResult {
  return { accept: false, reason, detail };
}

/** Submission (ports 465/587): the sender must be the From address, and the mail encrypted. */
export function checkOutgoing(input: GateInput): GateResult {
  const id = identify(input.message);
  if ("result" in id) return id.result;
  const { root, from } = id;
  if (normalizeEnvelopeAddress(input.mailFrom) !== from) {
    return {
      ...reject("from_mismatch", `Envelope sender "${input.mailFrom}" is not From "${from}"`),
      fromAddress: from,
    };
  }
  if (isEncryptedMessage(root, input.message, "outgoing")) {
    return { accept: true, kind: "encrypted", fromAddress: from };
  }
  if (isSecureJoinRequest(root, input.message)) {
    return { accept: true, kind: "securejoin", fromAddress: from };
  }
  if (isSelfSentAutocryptSetup(root, from, input.recipients)) {
    return { accept: true, kind: "autocrypt_setup", fromAddress: from };
  }
  return {
    ...reject("not_encrypted", `Unencrypted mail from "${from}"`),
    fromAddress: from,
  };
}

/**
 * Delivery from other relays (port 25, /mxdeliv). A sender that differs from the From address is
 * not refused but reset to "<>" so no bounce reaches a possibly forged address. A not_encrypted
 * verdict may still be waived by the caller for recipients that accept cleartext.
 */
export function checkIncoming(input: GateInput): GateResult {
  const id = identify(input.message);
  if ("result" in id) return id.result;
  const { root, from } = id;
  const resetSender = normalizeEnvelopeAddress(input.mailFrom) !== from;
  const base = { fromAddress: from, resetSender };
  if (isEncryptedMessage(root, input.message, "incoming")) {
    return { accept: true, kind: "encrypted", ...base };
  }
  if (isSecureJoinRequest(root, input.message)) {
    return { accept: true, kind: "securejoin", ...base };
  }
  if (isMailerDaemonReport(root, from)) return { accept: true, kind: "mailer_daemon", ...base };
  return { ...reject("not_encrypted", `Unencrypted mail from "${from}"`), ...base };
}
