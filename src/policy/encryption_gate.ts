// Whole-buffer forms of the streaming gate (gate.ts) for callers that hold the message: the same
// verdicts, computed by pushing the message in 64 KiB pieces.

import { createGate, type GateResult } from "./gate.ts";

export type { AcceptKind, GateResult, RejectReason, Verdict } from "./gate.ts";

export interface GateInput {
  /** Envelope sender (MAIL FROM), without angle brackets; "" for the null sender. */
  mailFrom: string;
  recipients: readonly string[];
  /** The message exactly as received in DATA (dot-unstuffed). */
  message: Uint8Array;
}

const PIECE = 64 * 1024;

function run(direction: "outgoing" | "incoming", input: GateInput): GateResult {
  const gate = createGate({ direction, mailFrom: input.mailFrom, recipients: input.recipients });
  for (let i = 0; i < input.message.length; i += PIECE) {
    gate.push(input.message.subarray(i, i + PIECE));
  }
  return gate.end();
}

/** Submission (ports 465/587): the sender must be the From address, and the mail encrypted. */
export function checkOutgoing(input: GateInput): GateResult {
  return run("outgoing", input);
}

/**
 * Delivery from other relays (port 25, /mxdeliv). A sender that differs from the From address is
 * not refused but reset to "<>" so no bounce reaches a possibly forged address. A not_encrypted
 * verdict may still be waived by the caller for recipients that accept cleartext, unless
 * `senderAmbiguous` is set.
 */
export function checkIncoming(input: GateInput): GateResult {
  return run("incoming", input);
}
