// One message to one destination's hosts: HTTPS /mxdeliv first, then SMTP with STARTTLS, each MX
// host and address in turn, all within one attempt's budget. The result tells per recipient what
// happened, and whether the peer answered at all (a refusal is an answer; a timeout is not), which
// is what the scheduler's slow start and backoff follow.

import type { Destination } from "./router.ts";
import { AttemptBudget, type Deadlines, transferMs } from "./deadlines.ts";
import { fmt, seconds, TransportError } from "./conn.ts";
import type { HttpsPool } from "./https_client.ts";
import { postMxdeliv } from "./mxdeliv_client.ts";
import { type RecipientResult, SmtpReplyError, type SmtpTarget } from "./smtp_client.ts";
import type { SmtpPool } from "./smtp_pool.ts";
import type { OutgoingMessage } from "./outgoing_message.ts";

export interface Outcome {
  recipient: string;
  kind: "delivered" | "deferred" | "failed";
  detail: string;
  /** Enhanced status for a bounce (failed). */
  status?: string;
}

export interface TransportResult {
  outcomes: Outcome[];
  /** Some host answered (delivered or refused): the peer is up. */
  answered: boolean;
  via?: "https" | "smtp";
}

export interface PeerPorts {
  smtp: number;
  https: number;
}

export interface TransportOptions {
  heloName: string;
  /** Ports of a peer address (25 and 443; tests run peers elsewhere). */
  ports: (address: string) => PeerPorts;
  /** Trusted CAs (trust.ts); undefined: Deno's store. Asked for each attempt. */
  ca: () => string[] | undefined;
  deadlines: Deadlines;
  https: HttpsPool;
  smtp: SmtpPool;
  now: () => number;
  /** Ends every attempt at once (the relay is stopping). */
  signal?: AbortSignal;
  /** After SMTP worked where /mxdeliv did not, /mxdeliv is skipped this long (the reference). */
  mxdelivSkipMs?: number;
}

const ENHANCED = /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})/;

/** A reply to one recipient as an outcome. */
export function outcomeOf(recipient: string, code: number, text: string, host: string): Outcome {
  const detail = `${text.replace(/\s*\n\s*/g, " ")} (from ${host})`;
  if (code >= 200 && code < 300) return { recipient, kind: "delivered", detail };
  if (code >= 500) {
    return { recipient, kind: "failed", detail, status: ENHANCED.exec(text)?.[1] ?? "5.0.0" };
  }
  return { recipient, kind: "deferred", detail };
}

export class Transport {
  #o: TransportOptions;
  /** Hosts whose /mxdeliv did not work while SMTP did: SMTP only until then. */
  #noMxdeliv = new Map<string, number>();

  constructor(options: TransportOptions) {
    this.#o = options;
  }

  /** Whether /mxdeliv is skipped for the host now. */
  mxdelivSkipped(host: string): boolean {
    const until = this.#noMxdeliv.get(host) ?? 0;
    if (until > this.#o.now()) return true;
    this.#noMxdeliv.delete(host);
    return false;
  }

  async deliver(
    hosts: Destination[],
    sender: string,
    recipients: string[],
    data: OutgoingMessage,
  ): Promise<TransportResult> {
    // The base budget, and the time the message's size may take to send once (a slow link):
    // a fixed budget would cut every large message off on a link below its size's pace.
    const d = this.#o.deadlines;
    const attemptMs = d.attemptMs + transferMs(d, data.size) - d.commandMs;
    const budget = new AttemptBudget({ ...d, attemptMs }, this.#o.signal);
    const notes: string[] = [];
    for (const dest of hosts) {
      let httpsFailed = false;
      if (!this.mxdelivSkipped(dest.host)) {
        // The host's addresses in turn while one cannot be connected to (an IPv6 address
        // without a route): nothing was sent to it.
        for (const address of dest.addresses) {
          if (budget.remaining() <= 0) break;
          const r = await this.#https(dest, address, sender, recipients, data, budget, notes);
          if (r === "unreachable") continue;
          if (r) return r;
          break;
        }
        httpsFailed = true;
      }
      for (const address of dest.addresses) {
        if (budget.remaining() <= 0) break;
        const r = await this.#smtp(dest, address, sender, recipients, data, budget, notes);
        if (r) {
          // As the reference relay: a host that takes SMTP but not /mxdeliv gets SMTP for a while.
          if (httpsFailed) {
            this.#noMxdeliv.set(dest.host, this.#o.now() + (this.#o.mxdelivSkipMs ?? 30 * 60_000));
          }
          return r;
        }
      }
      // SMTP failed too: the host is down, not just without /mxdeliv; HTTPS is tried again next.
      this.#noMxdeliv.delete(dest.host);
      if (budget.remaining() <= 0) {
        notes.push(`attempt ended after ${seconds(attemptMs)}`);
        break;
      }
    }
    const detail = notes.join("; ") || "no host to deliver to";
    return {
      answered: false,
      outcomes: recipients.map((recipient) => ({ recipient, kind: "deferred", detail })),
    };
  }

  async #https(
    dest: Destination,
    address: string,
    sender: string,
    recipients: string[],
    data: OutgoingMessage,
    budget: AttemptBudget,
    notes: string[],
  ): Promise<TransportResult | "unreachable" | null> {
    const port = this.#o.ports(address).https;
    const where = `https://${fmt(dest.host, port)}/mxdeliv`;
    const post = (to: string[]) =>
      postMxdeliv(this.#o.https, {
        host: dest.host,
        address,
        port,
        insecureTls: dest.insecureTls,
        ca: this.#o.ca(),
        sender,
        recipients: to,
        data,
      }, budget);
    try {
      const r = await post(recipients);
      if (r.kind === "accepted") {
        const detail = `${r.text || r.status} (HTTPS ${dest.host})`;
        return {
          answered: true,
          via: "https",
          outcomes: recipients.map((recipient) => ({ recipient, kind: "delivered", detail })),
        };
      }
      if (r.kind === "refused") {
        // /mxdeliv has one reply for all recipients: a permanent refusal of several may be
        // one recipient's, so each is asked alone and keeps its own verdict.
        if (r.code >= 500 && recipients.length > 1) {
          const outcomes: Outcome[] = [];
          for (const recipient of recipients) {
            try {
              const one = await post([recipient]);
              outcomes.push(
                one.kind === "accepted"
                  ? { recipient, kind: "delivered", detail: `${one.text} (HTTPS ${dest.host})` }
                  : one.kind === "refused"
                  ? outcomeOf(recipient, one.code, one.text, `HTTPS ${dest.host}`)
                  : { recipient, kind: "deferred", detail: `${where} answered ${one.status}` },
              );
            } catch (err) {
              outcomes.push({
                recipient,
                kind: "deferred",
                detail: `${where}: ${(err as Error).message}`,
              });
            }
          }
          return { answered: true, via: "https", outcomes };
        }
        return {
          answered: true,
          via: "https",
          outcomes: recipients.map((x) => outcomeOf(x, r.code, r.text, `HTTPS ${dest.host}`)),
        };
      }
      notes.push(`${where} answered ${r.status} ${r.text}`.trim());
    } catch (err) {
      if (!(err instanceof TransportError)) throw err;
      const origin = `https://${fmt(dest.host, port)}: `;
      const message = err.message.startsWith(origin)
        ? err.message.slice(origin.length)
        : err.message;
      notes.push(`${where}: ${message}`);
      if (err.kind === "connect") return "unreachable";
    }
    return null;
  }

  async #smtp(
    dest: Destination,
    address: string,
    sender: string,
    recipients: string[],
    data: OutgoingMessage,
    budget: AttemptBudget,
    notes: string[],
  ): Promise<TransportResult | null> {
    const port = this.#o.ports(address).smtp;
    const target: SmtpTarget = {
      address,
      port,
      servername: dest.host,
      insecure: dest.insecureTls,
      ca: this.#o.ca(),
      heloName: this.#o.heloName,
    };
    const where = fmt(address, port);
    const message = { sender, recipients, data };
    try {
      let results: RecipientResult[];
      const first = await this.#o.smtp.acquire(target, budget);
      try {
        results = await first.session.send(message, budget);
        this.#o.smtp.release(target, first.session);
      } catch (err) {
        this.#o.smtp.discard(first.session);
        // A cached session the peer closed meanwhile: once more on a new one.
        if (!first.reused || !(err instanceof TransportError) || err.kind !== "closed") throw err;
        const again = await this.#o.smtp.acquire(target, budget);
        try {
          results = await again.session.send(message, budget);
          this.#o.smtp.release(target, again.session);
        } catch (err2) {
          this.#o.smtp.discard(again.session);
          throw err2;
        }
      }
      return {
        answered: true,
        via: "smtp",
        outcomes: results.map((x) => outcomeOf(x.recipient, x.code, x.text, dest.host)),
      };
    } catch (err) {
      if (err instanceof SmtpReplyError) {
        if (err.code >= 500) {
          // The server refuses us outright (554 greeting…): an answer, for every recipient.
          return {
            answered: true,
            via: "smtp",
            outcomes: recipients.map((r) => ({
              recipient: r,
              kind: "failed" as const,
              detail: err.message,
              status: ENHANCED.exec(err.message.split(": ").pop() ?? "")?.[1] ?? "5.0.0",
            })),
          };
        }
        notes.push(err.message.includes(where) ? err.message : `${where}: ${err.message}`);
        return null;
      }
      if (!(err instanceof TransportError)) throw err;
      notes.push(err.message.includes(where) ? err.message : `${where}: ${err.message}`);
      return null;
    }
  }
}
