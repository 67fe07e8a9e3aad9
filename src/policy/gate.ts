// The streaming encryption gate: one pass over the message as it arrives, one reading, one verdict.
//
//   const gate = createGate({ direction: "outgoing", mailFrom, recipients });
//   for await (const chunk of dataChunks) gate.push(chunk);   // dot-unstuffed DATA, any split
//   const verdict = gate.end();                                 // GateResult, as checkOutgoing
//   const tree = gate.structure();                              // the MimePart tree it read
//
// push() does O(chunk) work and keeps bounded state (the MIME reader's caps, a few hundred bytes
// per checked part), so a 30 MB message never sits in memory twice and never blocks the loop
// longer than one chunk takes. The verdict is the reference relay's (filtermail): encrypted
// PGP/MIME, a Secure-Join request, a self-sent Autocrypt Setup Message (outgoing) or a mailer-
// daemon report (incoming) pass; everything else is "not_encrypted" (523). On top of filtermail,
// the gate refuses every message that another reasonable reader could read differently (see
// src/mime/ambiguity.ts and the README section "What passes the gate").

import {
  type Ambiguity,
  type LeafBodySink,
  type LeafContext,
  type MimeLimits,
  type MimePart,
  MimeStreamParser,
  streamDecoder,
} from "../mime/mod.ts";
import { ArmorChecker } from "./armor_check.ts";
import {
  asciiCharset,
  exactValue,
  isLeaf,
  mimeType,
  normalizeEnvelopeAddress,
  SECURE_JOIN_BODIES,
  SECURE_JOIN_STEPS,
} from "./message_kinds.ts";
import { exactField, fromField, strictFromAddress } from "./sender_identity.ts";

export type RejectReason = "not_encrypted" | "from_mismatch" | "invalid_from" | "parse_error";

export type AcceptKind = "encrypted" | "securejoin" | "autocrypt_setup" | "mailer_daemon";

export type Verdict =
  | { accept: true; kind: AcceptKind }
  | { accept: false; reason: RejectReason; detail: string };

/** A verdict plus what the edge needs for its reply and for reinjection. */
export type GateResult = Verdict & GateFacts;

export interface GateFacts {
  /** Lowercased address of the From header, when it has one. */
  fromAddress?: string;
  /** Incoming only: the envelope sender must become "<>" (it differs from the From address). */
  resetSender?: boolean;
  /**
   * Set when readers could disagree on who sent the message (a second From or Sender, a
   * "From :" field). A not_encrypted verdict with this set must never be waived for recipients
   * that accept cleartext: it would let the message pose as someone else.
   */
  senderAmbiguous?: string;
  /** What the MIME reader found ambiguous (for logs). */
  ambiguities?: readonly Ambiguity[];
}

export interface GateOptions {
  direction: "outgoing" | "incoming";
  /** Envelope sender (MAIL FROM), without angle brackets; "" for the null sender. */
  mailFrom: string;
  recipients: readonly string[];
  limits?: Partial<MimeLimits>;
}

export interface Gate {
  /** The next bytes of the (dot-unstuffed) message; `text`: them as byteText gives them, if known. */
  push(chunk: Uint8Array, text?: string): void;
  /** The verdict, once the whole message was pushed. */
  end(): GateResult;
  /** The part tree (available after end()): what IMAP renders, computed once. */
  structure(): MimePart;
  /** Bytes pushed so far. */
  readonly size: number;
}

/** Collects a short decoded body (at most `cap` bytes), remembering whether it was canonical. */
class ShortText implements LeafBodySink {
  #decoder;
  #bytes: number[] = [];
  #over = false;
  #done = false;
  constructor(cte: string, readonly cap = 256) {
    this.#decoder = streamDecoder(cte);
  }
  write(b: Uint8Array) {
    if (this.#decoder) this.#keep(this.#decoder.push(b));
  }
  end() {
    if (this.#decoder) this.#keep(this.#decoder.end());
    this.#done = true;
  }
  #keep(b: Uint8Array) {
    if (this.#bytes.length + b.length > this.cap) this.#over = true;
    else for (const x of b) this.#bytes.push(x);
  }
  /** The ASCII text, or undefined when it was too long, 8-bit, or not canonically encoded. */
  text(): string | undefined {
    if (!this.#done || this.#over || !this.#decoder?.canonical) return undefined;
    if (this.#bytes.some((b) => b > 126 || (b < 32 && b !== 9 && b !== 10 && b !== 13))) {
      return undefined;
    }
    return String.fromCharCode(...this.#bytes);
  }
}

/** Decodes the payload part and runs the armor and packet checks on it as it streams. */
class PayloadCheck implements LeafBodySink {
  #decoder;
  #armor: ArmorChecker;
  #ok: boolean | undefined;
  constructor(cte: string, direction: "outgoing" | "incoming") {
    this.#decoder = streamDecoder(cte);
    this.#armor = new ArmorChecker(direction);
  }
  write(b: Uint8Array, text?: string) {
    if (!this.#decoder) return;
    const out = this.#decoder.push(b);
    // An identity encoding (7bit, 8bit, binary) hands the same bytes on: the text still fits.
    this.#armor.push(out, out === b ? text : undefined);
  }
  end() {
    if (!this.#decoder) return void (this.#ok = false);
    this.#armor.push(this.#decoder.end());
    this.#ok = this.#decoder.canonical && this.#armor.end();
  }
  get ok(): boolean {
    return this.#ok === true;
  }
}

function tee(sinks: LeafBodySink[]): LeafBodySink | undefined {
  if (sinks.length <= 1) return sinks[0];
  return {
    write: (b, text) => sinks.forEach((s) => s.write(b, text)),
    end: () => sinks.forEach((s) => s.end()),
  };
}

const IDENTITY_FIELDS = new Set(["from", "sender"]);

export function createGate(options: GateOptions): Gate {
  const { direction } = options;
  let control: ShortText | undefined;
  let payload: PayloadCheck | undefined;
  let joinText: ShortText | undefined;

  const onLeaf = (part: MimePart, where: LeafContext): LeafBodySink | undefined => {
    if (where.inMessage || where.path.length !== 1 || !where.parent) return undefined;
    const index = where.path[0];
    const parent = `${where.parent.type}/${where.parent.subtype}`;
    const sinks: LeafBodySink[] = [];
    const cte = part.contentTransferEncoding;
    if (parent === "multipart/encrypted" && index === 1) sinks.push(control = new ShortText(cte));
    if (parent === "multipart/encrypted" && index === 2) {
      sinks.push(payload = new PayloadCheck(cte, direction));
    }
    if (index === 1 && mimeType(part) === "text/plain") sinks.push(joinText = new ShortText(cte));
    return tee(sinks);
  };

  const parser = new MimeStreamParser({ onLeaf, limits: options.limits });
  let result: GateResult | undefined;

  return {
    push: (chunk, text) => parser.push(chunk, text),
    get size() {
      return parser.size;
    },
    structure: () => parser.end(),
    end(): GateResult {
      if (result) return result;
      const root = parser.end();
      result = judge(root, parser.ambiguities, options, {
        controlOk: asciiCharsetOf(root, 0) && control?.text()?.trim() === "Version: 1",
        payloadOk: asciiCharsetOf(root, 1) && payload?.ok === true,
        joinOk: asciiCharsetOf(root, 0) &&
          SECURE_JOIN_BODIES.includes(joinText?.text()?.trim().toLowerCase() ?? ""),
      });
      return result;
    },
  };
}

function asciiCharsetOf(root: MimePart, index: number): boolean {
  const p = root.children[index];
  return p !== undefined && asciiCharset(p);
}

interface BodyChecks {
  controlOk: boolean;
  payloadOk: boolean;
  joinOk: boolean;
}

function reject(reason: RejectReason, detail: string): GateResult {
  return { accept: false, reason, detail };
}

function describe(a: Ambiguity): string {
  const where = a.path.length ? `part ${a.path.join(".")}` : "message header";
  return `${a.detail} (${where}${a.inMessage ? ", in an attached message" : ""})`;
}

function judge(
  root: MimePart,
  ambiguities: readonly Ambiguity[],
  options: GateOptions,
  checks: BodyChecks,
): GateResult {
  const outer = ambiguities.filter((a) => !a.inMessage);
  const broken = outer.find((a) => a.code === "leading-blank");
  if (broken) {
    return reject(
      "parse_error",
      "Header cannot start with a space; it is likely an overhanging line from a previous header",
    );
  }
  if (!root.headers.some((f) => f.name !== "")) {
    return reject("parse_error", "Message has no header fields");
  }
  const fromF = fromField(root);
  if (!fromF) return reject("invalid_from", "");
  const from = strictFromAddress(fromF.value);
  if (from === undefined) return reject("invalid_from", fromF.value);

  const base: GateFacts = { fromAddress: from };
  if (ambiguities.length) base.ambiguities = ambiguities;
  if (options.direction === "outgoing") {
    if (normalizeEnvelopeAddress(options.mailFrom) !== from) {
      return {
        ...reject("from_mismatch", `Envelope sender "${options.mailFrom}" is not From "${from}"`),
        ...base,
      };
    }
  } else base.resetSender = normalizeEnvelopeAddress(options.mailFrom) !== from;

  // Who sent it is judged apart from what it holds: content that passes with a sender readers
  // disagree on is refused as an invalid From, content that does not pass stays a 523.
  const isIdentity = (a: Ambiguity) =>
    !a.inMessage && a.path.length === 0 && IDENTITY_FIELDS.has(a.field ?? "") &&
    (a.code === "field-name" || a.code === "duplicate-field");
  const identity = ambiguities.find(isIdentity);
  if (identity) base.senderAmbiguous = describe(identity);
  const rest = ambiguities.filter((a) => !isIdentity(a));
  const outerRest = rest.filter((a) => !a.inMessage);
  // Preamble and epilogue text is ignored by every reader of a report or a setup message
  // (Postfix writes "This is a MIME-encapsulated message."); it only matters where the content
  // must be nothing but the accepted parts (encrypted, Secure-Join).
  const atRoot = outerRest.filter((a) =>
    a.path.length === 0 && a.code !== "preamble-text" && a.code !== "epilogue-text"
  );

  const kind = acceptedKind(root, rest, atRoot, outerRest, options, from, checks);
  if (!kind) {
    const why = ambiguities[0] ? `: ${describe(ambiguities[0])}` : "";
    return { ...reject("not_encrypted", `Unencrypted mail from "${from}"${why}`), ...base };
  }
  if (identity) return { ...reject("invalid_from", fromF.value), ...base };
  return { accept: true, kind, ...base };
}

function acceptedKind(
  root: MimePart,
  all: readonly Ambiguity[],
  atRoot: readonly Ambiguity[],
  outer: readonly Ambiguity[],
  options: GateOptions,
  from: string,
  checks: BodyChecks,
): AcceptKind | undefined {
  const kids = root.children;
  if (all.length === 0 && mimeType(root) === "multipart/encrypted") {
    // RFC 3156: the control part, then the payload. filtermail also passes the control part
    // alone (it carries nothing but "Version: 1"), so tern does too.
    const [control, data] = kids;
    if (
      (kids.length === 1 || kids.length === 2) && kids.every(isLeaf) &&
      mimeType(control) === "application/pgp-encrypted" && checks.controlOk &&
      (kids.length === 1 || (mimeType(data) === "application/octet-stream" && checks.payloadOk))
    ) return "encrypted";
  }
  if (
    all.length === 0 && root.contentType.type === "multipart" && kids.length === 1 &&
    isLeaf(kids[0]) && mimeType(kids[0]) === "text/plain" && checks.joinOk &&
    SECURE_JOIN_STEPS.includes(exactValue(root, "secure-join") ?? "")
  ) return "securejoin";
  if (atRoot.length > 0) return undefined;
  if (options.direction === "outgoing") {
    if (
      options.recipients.length === 1 &&
      normalizeEnvelopeAddress(options.recipients[0]) === from &&
      exactValue(root, "subject") === "Autocrypt Setup Message" &&
      mimeType(root) === "multipart/mixed"
    ) return "autocrypt_setup";
    return undefined;
  }
  const reportOnly = outer.every((a) => a.code === "preamble-text" || a.code === "epilogue-text");
  const autoSubmitted = exactField(root, "auto-submitted")?.value ?? "";
  if (
    reportOnly && autoSubmitted !== "" && from.startsWith("mailer-daemon@") &&
    mimeType(root) === "multipart/report"
  ) return "mailer_daemon";
  return undefined;
}
