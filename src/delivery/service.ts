// Mail acceptance and local delivery, shared by SMTP submission, SMTP inbound and /mxdeliv.
// Each step answers with the reply the reference relay gives (SMTP reply lines are the language
// relays speak to each other, over HTTP too), so every edge reports the same verdicts.

import { createGate, type GateResult } from "../policy/mod.ts";
import { encodeStructure, type MimePart, withTopHeader } from "../mime/mod.ts";
import type { EventBus, RelayEvent } from "../events/mod.ts";
import type { AccountRecord, DeliveryOutcome, SpooledBody, Store } from "../store/types.ts";
import type { Logger } from "../log/mod.ts";
import { spoolBytes } from "../store/message_input.ts";
import { buildBounce, type FailedRecipient } from "../federation/bounce.ts";
import {
  cleanStoredHeaders,
  cleanSubmittedForStorage,
  cleanSubmittedHeaders,
} from "./header_cleanup.ts";
import { type IntakeReader, MessageIntake } from "./message_intake.ts";
import { type RateDecision, type SendRate, SendRateLimiter } from "./rate_limit.ts";

/** An SMTP reply: code, enhanced status code (may be ""), text. */
export interface Reply {
  code: number;
  enhanced: string;
  text: string;
}

export const reply = (code: number, enhanced: string, text: string): Reply => ({
  code,
  enhanced,
  text,
});

export const OK = reply(250, "2.0.0", "OK");
export const NOT_ENCRYPTED = reply(523, "", "Encryption Needed: Invalid Unencrypted Mail");
/** Dovecot's refusal of a delivery into a full mailbox (the reference's LMTP text). */
const QUOTA_TEXT = "Quota exceeded (mailbox for user is full)";
/** A top header block longer than the MIME reader keeps (the gate refuses those first). */
export const HEADER_TOO_LARGE = reply(552, "5.3.4", "Message header exceeds the size limit");

export interface DeliveryAccounts {
  localAddress(address: string): string | null;
  getAccount(address: string): Promise<AccountRecord | null>;
  /** The local account that takes mail for postmaster@domain (it may be made for that). */
  postmasterRecipient(): Promise<string>;
}

export interface DeliveryLimits {
  maxMessageBytes: number;
  maxRecipients: number;
  defaultQuotaBytes: number;
  sendPerMinute: number;
  sendBurst: number;
}

export interface DeliveryServiceOptions {
  store: Store;
  bus: EventBus;
  accounts: DeliveryAccounts;
  limits: DeliveryLimits;
  log?: Logger;
  now?: () => number;
  /** Clock for the send rate (monotonic); defaults to performance.now. */
  monotonicNow?: () => number;
  /** The send rate kept elsewhere (several instances); default: in this process's memory. */
  sendRate?: SendRate;
  /** Starts checking where one incoming message comes from (federation policy, DKIM). */
  checkOrigin?: () => OriginCheck;
  /** Who reports undelivered mail: From MAILER-DAEMON@domain, Reporting-MTA hostname. */
  reporter: { domain: string; hostname: string };
  /**
   * Why outbound delivery would refuse an address ("loopback"), or null: submissions to address
   * literals it refuses are refused at RCPT already. Default: none refused here.
   */
  refuseAddress?: (address: string) => string | null;
}

/**
 * Reads an incoming message as it streams (e.g. DKIM body hashes), then judges where it comes
 * from: the refusal, or null to accept.
 */
export interface OriginCheck extends IntakeReader {
  end(fromAddress: string): Promise<Reply | null>;
}

/**
 * One message being received: write() its bytes as they arrive (resolves when more may come;
 * never rejects), then end() (the report; the message is stored when it passes) or abort()
 * (nothing is kept). end() throws on storage failures (full disk), after freeing the spool.
 */
export interface MessageTransaction {
  /** `text`: `chunk` as mime's byteText gives it, when the caller has it (see MessageIntake). */
  write(chunk: Uint8Array, text?: string): Promise<void>;
  end(): Promise<DeliveryReport>;
  abort(): Promise<void>;
}

export interface Envelope {
  /** Envelope sender without angle brackets; "" is the null sender. */
  mailFrom: string;
  recipients: string[];
}

export interface DeliveryReport {
  reply: Reply;
  /** Local accounts that received the message. */
  delivered: number;
  /** Remote recipients put on the outbound queue. */
  queued: number;
}

/** Parses the domain of an address; domain literals stay bracketed. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at < 0 ? "" : address.slice(at + 1).toLowerCase();
}

/** A syntactically usable envelope address: one local part, "@", a domain or domain literal. */
export function isValidAddress(address: string): boolean {
  if (address.length > 320 || /[\s<>()\\,;"]/.test(address)) return false;
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return false;
  const domain = address.slice(at + 1);
  if (domain.startsWith("[")) return isAddressLiteral(domain);
  // Labels may start with "_": Delta Chat treats such domains as test relays (self-signed
  // certificates), and the config accepts them, so their mail must flow too.
  return /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$/
    .test(domain) && !address.slice(0, at).includes("@");
}

/**
 * `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3) holding an address that exists: four
 * octets up to 255, or an IPv6 address as the URL parser reads one. `[999.1.1.1]` would only be
 * queued to bounce days later.
 */
function isAddressLiteral(domain: string): boolean {
  const v4 = /^\[(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\]$/.exec(domain);
  if (v4) return v4.slice(1).every((o) => Number(o) <= 255);
  const v6 = /^\[IPv6:([0-9a-fA-F:.]+)\]$/i.exec(domain);
  if (!v6) return false;
  try {
    new URL(`http://[${v6[1]}]/`);
    return true;
  } catch {
    return false;
  }
}

export class DeliveryService {
  readonly limits: DeliveryLimits;
  #store: Store;
  #bus: EventBus;
  #accounts: DeliveryAccounts;
  #log?: Logger;
  #now: () => number;
  #rate: SendRate;
  #checkOrigin?: DeliveryServiceOptions["checkOrigin"];
  #reporter: DeliveryServiceOptions["reporter"];
  #refuseAddress: DeliveryServiceOptions["refuseAddress"];
  /** Called after remote recipients were queued (wakes the outbound worker). */
  onQueued: () => void = () => {};

  constructor(options: DeliveryServiceOptions) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#accounts = options.accounts;
    this.limits = options.limits;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#checkOrigin = options.checkOrigin;
    this.#reporter = options.reporter;
    this.#refuseAddress = options.refuseAddress;
    this.#rate = options.sendRate ?? new SendRateLimiter({
      perMinute: options.limits.sendPerMinute,
      burst: options.limits.sendBurst,
      now: options.monotonicNow,
    });
  }

  /** Submission MAIL FROM: the sender must be the logged-in address, within its send rate. */
  checkSubmissionSender(login: string, mailFrom: string): Reply | null | Promise<Reply | null> {
    if (mailFrom.toLowerCase() !== login.toLowerCase()) {
      // Postfix's reject_sender_login_mismatch text, answered to each RCPT.
      return reply(
        553,
        "5.7.1",
        `<${mailFrom}>: Sender address rejected: not owned by user ${login}`,
      );
    }
    const verdict = (r: RateDecision) => {
      if (r.allowed) return null;
      const wait = Math.ceil(r.retryAfterMs / 1000);
      return reply(450, "", `4.7.1: Too much mail from ${mailFrom}, try again in ${wait} s`);
    };
    // The in-memory rate answers at once: no promise on the single-instance path.
    const r = this.#rate.take(login.toLowerCase());
    return r instanceof Promise ? r.then(verdict) : verdict(r);
  }

  /**
   * RCPT TO. Inbound mail may only be for existing local accounts (never an open relay);
   * submissions may go anywhere, but local recipients must exist.
   */
  async checkRecipient(address: string, mode: "inbound" | "submission"): Promise<Reply | null> {
    if (!isValidAddress(address)) return reply(501, "5.1.3", `Bad recipient address syntax`);
    const local = this.#accounts.localAddress(address);
    if (!local) {
      if (mode === "inbound") return reply(550, "5.7.1", "Relay access denied");
      const domain = domainOf(address);
      const ip = domain.startsWith("[") ? domain.slice(1, -1).replace(/^ipv6:/, "") : null;
      const refused = ip !== null && this.#refuseAddress?.(ip);
      return refused
        ? reply(
          550,
          "5.1.2",
          `<${address}>: Recipient address rejected: destination address is not public (${refused})`,
        )
        : null;
    }
    // RFC 5321 §4.5.1: mail for postmaster is accepted; delivery finds who takes it.
    if (isPostmaster(local)) return null;
    // Read every time, not cached: `tern accounts block|delete` writes the database from
    // another process, and other instances on PostgreSQL write it too; a cache here could not
    // learn of those at once (SQLite's data_version moves with every commit of this process's
    // own writer thread as well), and the reply must say "unknown" right after them.
    const account = await this.#accounts.getAccount(local);
    if (!account || account.blocked) {
      return reply(550, "5.1.1", `<${address}>: Recipient address rejected: User unknown`);
    }
    return null;
  }

  /**
   * A message from a logged-in user (ports 465/587), taken in as it arrives: the gate reads it
   * and the store spools it on the way; end() gives the verdict and, when it passes, stores it.
   */
  beginSubmission(login: string, envelope: Envelope): MessageTransaction {
    const gate = createGate({ direction: "outgoing", ...envelope });
    const intake = new MessageIntake(this.#store.createSpool(), [gate]);
    return transaction(intake, async () => {
      const verdict = gate.end();
      const refused = this.#refusal(verdict, envelope.mailFrom);
      if (refused) {
        this.#log?.info("submission refused", { reason: verdict.accept ? "" : verdict.reason });
        return { reply: refused, delivered: 0, queued: 0 };
      }
      const tree = gate.structure();
      const header = topHeader(tree);
      if (!header) return { reply: HEADER_TOO_LARGE, delivered: 0, queued: 0 };
      let local: string[] = [];
      const remote: string[] = [];
      for (const r of unique(envelope.recipients)) {
        (this.#accounts.localAddress(r) ? local : remote).push(r);
      }
      local = await this.#routePostmaster(local);
      // One spool of the message as received; each stored copy is its own head over it.
      const body = await intake.finish();
      const arrivedAt = this.#now();
      const stored = local.length > 0 ? cleanSubmittedForStorage(header) : header;
      const outcome = await this.#deliverLocal(login, local, stored, { tree, body });
      if (outcome.fullReply && remote.length === 0) {
        return { reply: outcome.fullReply, delivered: 0, queued: 0 };
      }
      if (remote.length > 0) {
        await this.#store.enqueue({
          head: cleanSubmittedHeaders(header),
          skip: tree.headerEnd,
          body,
          sender: envelope.mailFrom,
          recipients: remote,
          now: this.#now(),
        });
        this.onQueued();
      }
      // Local recipients that got nothing while the message is accepted for others.
      await this.#bounce(envelope.mailFrom, outcome.failed, header, arrivedAt);
      return { reply: OK, delivered: outcome.delivered, queued: remote.length };
    });
  }

  /** A message from another relay (port 25 or /mxdeliv), taken in as it arrives: local only. */
  beginReceive(envelope: Envelope): MessageTransaction {
    const gate = createGate({ direction: "incoming", ...envelope });
    const origin = this.#checkOrigin?.();
    const intake = new MessageIntake(this.#store.createSpool(), origin ? [gate, origin] : [gate]);
    return transaction(intake, async () => {
      const verdict = gate.end();
      const refused = this.#refusal(verdict, envelope.mailFrom);
      if (refused) return { reply: refused, delivered: 0, queued: 0 };
      if (origin && verdict.fromAddress) {
        const problem = await origin.end(verdict.fromAddress);
        if (problem) return { reply: problem, delivered: 0, queued: 0 };
      }
      const tree = gate.structure();
      const header = topHeader(tree);
      if (!header) return { reply: HEADER_TOO_LARGE, delivered: 0, queued: 0 };
      const arrivedAt = this.#now();
      const local = await this.#routePostmaster(
        unique(envelope.recipients).filter((r) => this.#accounts.localAddress(r)),
      );
      const outcome = local.length === 0 ? { delivered: 0, failed: [] } : await this.#deliverLocal(
        "",
        local,
        cleanStoredHeaders(header),
        { tree, body: await intake.finish() },
      );
      if (outcome.fullReply) return { reply: outcome.fullReply, delivered: 0, queued: 0 };
      if (outcome.delivered === 0) {
        return { reply: reply(550, "5.1.1", "No such recipient"), delivered: 0, queued: 0 };
      }
      // As the reference's filtermail reinjects with MAIL FROM:<> when the envelope sender is
      // not the From address: nothing goes back to a sender that may be forged.
      const sender = verdict.accept && verdict.resetSender ? "" : envelope.mailFrom;
      await this.#bounce(sender, outcome.failed, header, arrivedAt);
      return { reply: OK, delivered: outcome.delivered, queued: 0 };
    });
  }

  /** A whole message from a logged-in user (for callers that hold it, and tests). */
  submit(login: string, envelope: Envelope, message: Uint8Array): Promise<DeliveryReport> {
    return whole(this.beginSubmission(login, envelope), message);
  }

  /** A whole message from another relay (for callers that hold it, and tests). */
  receive(envelope: Envelope, message: Uint8Array): Promise<DeliveryReport> {
    return whole(this.beginReceive(envelope), message);
  }

  /** Local recipients with postmaster replaced by the account that takes its mail. */
  async #routePostmaster(local: string[]): Promise<string[]> {
    if (!local.some(isPostmaster)) return local;
    const target = await this.#accounts.postmasterRecipient();
    return unique(local.map((r) => isPostmaster(r) ? target : r));
  }

  #refusal(v: GateResult, mailFrom: string): Reply | null {
    if (v.accept) return null;
    switch (v.reason) {
      case "not_encrypted":
        return NOT_ENCRYPTED;
      case "from_mismatch":
        return reply(500, "5.7.1", `Invalid FROM <${v.fromAddress}> for <${mailFrom}>`);
      case "invalid_from":
        return reply(500, "5.6.0", `Invalid FROM header: ${v.detail}`);
      case "parse_error":
        return reply(500, "5.6.0", `Failed to parse message: ${v.detail}`);
    }
  }

  /**
   * One shared body for every local recipient, committed before the caller answers 250; then a
   * bus event per recipient so IDLE sessions and push wake at once. The stored copy is `head`
   * (the rewritten header block) over the received bytes after their header; its structure is
   * the one the gate read, with that head on top. The store resolves the recipients in its
   * write transaction: an account deleted or blocked since RCPT gets nothing.
   */
  async #deliverLocal(
    sender: string,
    recipients: string[],
    head: Uint8Array,
    message: { tree: MimePart; body: SpooledBody },
  ): Promise<{ delivered: number; failed: FailedRecipient[]; fullReply?: Reply }> {
    if (recipients.length === 0) return { delivered: 0, failed: [] };
    const { tree, body } = message;
    const outcomes = await this.#store.deliver({
      head,
      skip: tree.headerEnd,
      body,
      structure: encodeStructure(withTopHeader(tree, head)),
      internalDate: this.#now(),
      targets: recipients.map((r) => ({ address: r.toLowerCase(), mailboxName: "INBOX" })),
      defaultQuotaBytes: this.limits.defaultQuotaBytes,
    });
    let delivered = 0;
    const full: string[] = [];
    const failed: FailedRecipient[] = [];
    outcomes.forEach((o, i) => {
      if (o.ok) {
        delivered++;
        this.#published(o, sender);
        return;
      }
      const address = o.address ?? recipients[i].toLowerCase();
      this.#log?.info("local delivery failed", { code: o.code });
      if (o.code === "no_account") {
        // Deleted or blocked since its RCPT was accepted.
        failed.push({
          recipient: address,
          status: "5.1.1",
          reason: `550 5.1.1 <${address}>: Recipient address rejected: User unknown`,
        });
        return;
      }
      full.push(address);
      // The reference relay's Dovecot text (LMTP, passed on in Postfix's bounce).
      failed.push({
        recipient: address,
        status: "5.2.2",
        reason: `552 5.2.2 <${address}> ${QUOTA_TEXT}`,
      });
    });
    if (delivered === 0 && full.length > 0) {
      return {
        delivered,
        failed,
        fullReply: reply(552, "5.2.2", `${full.map((a) => `<${a}>`).join(", ")} ${QUOTA_TEXT}`),
      };
    }
    return { delivered, failed };
  }

  /**
   * Tells the envelope sender which recipients got nothing although the message was accepted,
   * as the reference's Postfix bounces what Dovecot's LMTP refused: a delivery status report
   * into the sender's INBOX when the sender is local, else on the outbound queue with the null
   * sender. Committed before the caller answers 250 (a failure here fails the message, and the
   * sender's side tries again). Never to the null sender or a MAILER-DAEMON: no bounce of a
   * bounce.
   */
  async #bounce(
    sender: string,
    failed: FailedRecipient[],
    header: Uint8Array,
    arrivedAt: number,
  ): Promise<void> {
    if (failed.length === 0 || !isValidAddress(sender)) return;
    const mailbox = sender.slice(0, sender.lastIndexOf("@")).toLowerCase();
    if (mailbox === "mailer-daemon") return;
    const now = this.#now();
    const message = buildBounce({
      ...this.#reporter,
      sender,
      original: header,
      failed,
      now,
      arrivedAt,
    });
    const local = this.#accounts.localAddress(sender);
    if (local) {
      const o = await this.deliverReport(local, message);
      if (!o.ok) this.#log?.warn("bounce not delivered", { code: o.code });
    } else {
      const spooled = await spoolBytes(this.#store, message);
      try {
        await this.#store.enqueue({ body: spooled.body, sender: "", recipients: [sender], now });
      } finally {
        await spooled.discard();
      }
      this.onQueued();
    }
    this.#log?.info("bounce sent", { recipients: failed.length, local: local !== null });
  }

  /**
   * A delivery report (a bounce) into the INBOX of local `address`, stored as it is (no gate, no
   * header rewriting), and announced to IDLE and push. The store resolves the account: one
   * deleted or blocked since it sent gets nothing, and a full mailbox refuses it (the outcome
   * says which).
   */
  async deliverReport(address: string, message: Uint8Array): Promise<DeliveryOutcome> {
    const spooled = await spoolBytes(this.#store, message);
    try {
      const [o] = await this.#store.deliver({
        body: spooled.body,
        internalDate: this.#now(),
        targets: [{ address: address.toLowerCase(), mailboxName: "INBOX" }],
        defaultQuotaBytes: this.limits.defaultQuotaBytes,
      });
      if (o.ok) this.#published(o, "");
      return o;
    } finally {
      await spooled.discard();
    }
  }

  #published(o: Extract<DeliveryOutcome, { ok: true }>, sender: string) {
    this.#bus.publish(deliveredEvent(o, sender !== "" && sender.toLowerCase() === o.address));
  }
}

/** The bus event of one stored copy, with what its follow-ups need (see DeliveryOutcome). */
export function deliveredEvent(
  o: Extract<DeliveryOutcome, { ok: true }>,
  fromSelf: boolean,
): RelayEvent {
  return {
    type: "mail.delivered",
    accountId: o.accountId,
    address: o.address,
    mailboxId: o.mailboxId,
    uid: o.uid,
    fromSelf,
    usedBytes: o.usedBytes,
    quotaBytes: o.quotaBytes,
    hasPushTokens: o.hasPushTokens,
  };
}

/** The transaction over an intake: `finish` runs at end(); the spool is freed either way. */
function transaction(
  intake: MessageIntake,
  finish: () => Promise<DeliveryReport>,
): MessageTransaction {
  let settled = false;
  return {
    write: (chunk, text) => intake.write(chunk, text),
    async end() {
      if (settled) throw new Error("The message transaction already ended");
      settled = true;
      try {
        return await finish();
      } finally {
        await intake.discard();
      }
    },
    async abort() {
      settled = true;
      await intake.discard();
    },
  };
}

/** Runs a transaction over a message held in memory. */
async function whole(tx: MessageTransaction, message: Uint8Array): Promise<DeliveryReport> {
  const piece = 1 << 20;
  for (let i = 0; i < message.length; i += piece) await tx.write(message.subarray(i, i + piece));
  return await tx.end();
}

/** The received top header block (up to its blank line), or null when longer than was kept. */
function topHeader(tree: MimePart): Uint8Array | null {
  const raw = tree.rawHeader;
  return raw && raw.length === tree.headerEnd - tree.start ? raw : null;
}

/** A local address whose mailbox is postmaster (any case, RFC 5321 §4.5.1). */
function isPostmaster(local: string): boolean {
  return local.slice(0, local.lastIndexOf("@")).toLowerCase() === "postmaster";
}

function unique(addresses: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const a of addresses) {
    const k = a.toLowerCase();
    if (!seen.has(k)) {
      seen.add(k);
      out.push(a);
    }
  }
  return out;
}
