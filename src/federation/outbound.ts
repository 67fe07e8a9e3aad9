// The outbound queue worker: takes due recipients from the store, groups them per message and
// destination domain, signs, and delivers over HTTPS /mxdeliv first, then SMTP with STARTTLS,
// trying every host and address. Each recipient ends delivered, deferred (with every attempt's
// reason and a backoff) or failed (with a bounce to the sender).

import type { QueueRecipientRecord, Store } from "../store/types.ts";
import type { Logger } from "../log/mod.ts";
import { type DnsResolver } from "./resolver.ts";
import { type Destination, isIpLiteral, route } from "./router.ts";
import { fmt, type RecipientResult, sendSmtp, SmtpClientError } from "./smtp_client.ts";
import { postMxdeliv } from "./mxdeliv_client.ts";
import { buildBounce, type FailedRecipient } from "./bounce.ts";
import { type MtaSts, mxMatches } from "./mta_sts.ts";

/** Default claim on due recipients: past the SMTP client's timeouts over every destination. */
export const CLAIM_MS = 10 * 60_000;

export interface OutboundOptions {
  store: Store;
  dns: DnsResolver;
  domain: string;
  hostname: string;
  /** Signs a message for sending (DKIM), or returns it unchanged. */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** Stores a bounce in a local sender's INBOX. */
  deliverBounce(sender: string, message: Uint8Array): Promise<void>;
  /** Whether a remote domain may receive mail (federation policy). */
  allowed(domain: string): Promise<boolean>;
  lifetimeMs: number;
  /**
   * How long an attempt holds its recipients before another instance may take them (default
   * CLAIM_MS); longer than any attempt lasts, or a slow attempt may be repeated elsewhere.
   */
  claimMs?: number;
  log?: Logger;
  now?: () => number;
  /** Ports of peers; tests point these at unprivileged listeners. */
  ports?: { smtp: number; https: number };
  caCerts?: string[];
  timeoutMs?: number;
  /** MTA-STS policies of destination domains (RFC 8461). */
  mtaSts?: MtaSts;
}

/** Backoff after n failed attempts: 1, 5, 15, 30 min, then hourly up to 4 h. */
export function retryDelayMs(attempts: number): number {
  const minutes = [1, 5, 15, 30, 60, 120, 240];
  return minutes[Math.min(attempts - 1, minutes.length - 1)] * 60_000;
}

const MXDELIV_SKIP_MS = 30 * 60_000;

interface Outcome {
  recipient: string;
  kind: "delivered" | "deferred" | "failed";
  detail: string;
  status?: string;
}

export class OutboundService {
  #o: OutboundOptions;
  #now: () => number;
  #running: Promise<number> | null = null;
  #again = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  /** Hosts whose /mxdeliv failed recently: SMTP only for a while (as the reference). */
  #noMxdeliv = new Map<string, number>();

  constructor(options: OutboundOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  start(intervalMs = 5_000) {
    this.#timer = setInterval(() => this.kick(), intervalMs);
    this.kick();
  }

  async stop() {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => 0);
  }

  /** Runs the queue now (coalesced with a run in progress). */
  kick(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.runOnce().catch((err) => {
      this.#o.log?.error("outbound queue run failed", { error: String(err) });
      return 0;
    }).finally(() => {
      this.#running = null;
      if (this.#again) {
        this.#again = false;
        this.kick();
      }
    });
  }

  /** Delivers what is due; returns how many recipients were attempted. */
  async runOnce(): Promise<number> {
    // Claimed for a lease: with several instances on one store each recipient is attempted by
    // one of them, and by another once the lease has run out if that one died meanwhile.
    const due = await this.#o.store.claimRecipients(this.#now(), 200, this.#o.claimMs ?? CLAIM_MS);
    const groups = new Map<string, QueueRecipientRecord[]>();
    for (const r of due) {
      const key = `${r.queueId} ${r.domain}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    await Promise.all([...groups.values()].map((g) => this.#deliverGroup(g)));
    return due.length;
  }

  async #deliverGroup(group: QueueRecipientRecord[]) {
    const { store } = this.#o;
    const entry = await store.getQueueEntry(group[0].queueId);
    if (!entry) return;
    const body = await store.readBody(entry.bodyId);
    const domain = group[0].domain;
    let outcomes: Outcome[];
    if (!body) {
      outcomes = group.map((r) => ({
        recipient: r.recipient,
        kind: "failed",
        detail: "Message body lost",
        status: "5.3.0",
      }));
    } else if (!(await this.#o.allowed(domain))) {
      outcomes = group.map((r) => ({
        recipient: r.recipient,
        kind: "failed",
        detail: `Delivery to ${domain} is not allowed by this relay's federation policy`,
        status: "5.7.1",
      }));
    } else {
      const signed = await this.#o.sign(body);
      outcomes = await this.#deliver(domain, entry.sender, group.map((r) => r.recipient), signed);
    }
    const now = this.#now();
    const failed: FailedRecipient[] = [];
    for (const r of group) {
      const o = outcomes.find((x) => x.recipient === r.recipient)!;
      const attempts = r.attempts + 1;
      const expired = now - entry.createdAt >= this.#o.lifetimeMs;
      if (o.kind === "delivered") {
        await store.updateRecipient(r.id, { status: "delivered", attempts, lastError: null, now });
        await store.recordFederation(domain, "sent", now);
      } else if (o.kind === "failed" || expired) {
        const reason = o.kind === "failed"
          ? o.detail
          : `Gave up after ${attempts} attempts: ${o.detail}`;
        await store.updateRecipient(r.id, { status: "failed", attempts, lastError: reason, now });
        await store.recordFederation(domain, "failure", now, reason);
        failed.push({
          recipient: r.recipient,
          status: o.status ?? (expired ? "4.4.7" : "5.0.0"),
          reason,
        });
      } else {
        await store.updateRecipient(r.id, {
          status: "deferred",
          attempts,
          lastError: o.detail,
          nextAttemptAt: now + retryDelayMs(attempts),
          now,
        });
        await store.recordFederation(domain, "failure", now, o.detail);
      }
      this.#o.log?.info("outbound delivery", { domain, outcome: o.kind, attempts });
    }
    if (failed.length && entry.sender && body) {
      const bounce = buildBounce({
        domain: this.#o.domain,
        hostname: this.#o.hostname,
        sender: entry.sender,
        original: body,
        failed,
        now,
      });
      await this.#o.deliverBounce(entry.sender, bounce).catch((err) =>
        this.#o.log?.error("bounce delivery failed", { error: String(err) })
      );
    }
    const fresh = await store.getQueueEntry(entry.id);
    if (fresh && fresh.recipients.every((r) => r.status === "delivered" || r.status === "failed")) {
      await store.deleteQueueEntry(entry.id);
    }
  }

  async #deliver(
    domain: string,
    sender: string,
    recipients: string[],
    data: Uint8Array,
  ): Promise<Outcome[]> {
    const r = await route(domain, this.#o.dns);
    if (!r.ok) {
      return recipients.map((recipient) => ({
        recipient,
        kind: r.permanent ? "failed" : "deferred",
        detail: r.reason,
        status: r.permanent ? "5.1.2" : undefined,
      }));
    }
    let destinations = r.destinations;
    if (this.#o.mtaSts && !isIpLiteral(domain)) {
      const policy = await this.#o.mtaSts.policy(domain).catch(() => null);
      if (policy?.mode === "enforce") {
        destinations = destinations.filter((d) => mxMatches(d.host, policy.mx));
        if (!destinations.length) {
          const detail = `MTA-STS policy of ${domain} allows ${policy.mx.join(", ")}, ` +
            `not ${r.destinations.map((d) => d.host).join(", ")}`;
          return recipients.map((recipient) => ({ recipient, kind: "deferred", detail }));
        }
      }
    }
    const attempts: string[] = [];
    for (const dest of destinations) {
      const viaHttps = await this.#tryMxdeliv(dest, sender, recipients, data, attempts);
      if (viaHttps) return viaHttps;
      for (const address of dest.addresses) {
        const port = this.#o.ports?.smtp ?? 25;
        try {
          const results = await sendSmtp({
            address,
            port,
            servername: dest.host,
            insecureTls: dest.insecureTls,
            heloName: this.#o.hostname,
            sender,
            recipients,
            data,
            timeoutMs: this.#o.timeoutMs,
            caCerts: this.#o.caCerts,
          });
          return results.map((x) => this.#fromReply(x, dest.host));
        } catch (err) {
          const e = err as SmtpClientError;
          if (e.code >= 500) {
            return recipients.map((recipient) => ({
              recipient,
              kind: "failed",
              detail: e.message,
              status: "5.0.0",
            }));
          }
          attempts.push(
            e.message.includes(fmt(address, port))
              ? e.message
              : `${fmt(address, port)}: ${e.message}`,
          );
        }
      }
    }
    return recipients.map((recipient) => ({
      recipient,
      kind: "deferred",
      detail: attempts.join("; "),
    }));
  }

  async #tryMxdeliv(
    dest: Destination,
    sender: string,
    recipients: string[],
    data: Uint8Array,
    attempts: string[],
  ): Promise<Outcome[] | null> {
    const skipUntil = this.#noMxdeliv.get(dest.host) ?? 0;
    if (skipUntil > this.#now()) return null;
    const port = this.#o.ports?.https ?? 443;
    try {
      const r = await postMxdeliv({
        host: dest.host,
        address: dest.addresses[0],
        port,
        insecureTls: dest.insecureTls,
        sender,
        recipients,
        data,
        timeoutMs: this.#o.timeoutMs,
        caCerts: this.#o.caCerts,
      });
      if (r.status >= 200 && r.status < 300) {
        return recipients.map((recipient) => ({
          recipient,
          kind: "delivered",
          detail: `${r.text} (HTTPS ${dest.host})`,
        }));
      }
      attempts.push(`https://${fmt(dest.host, port)}/mxdeliv answered ${r.status} ${r.text}`);
    } catch (err) {
      attempts.push(`https://${fmt(dest.host, port)}/mxdeliv: ${(err as Error).message}`);
    }
    this.#noMxdeliv.set(dest.host, this.#now() + MXDELIV_SKIP_MS);
    return null;
  }

  #fromReply(x: RecipientResult, host: string): Outcome {
    const detail = `${x.text} (from ${host})`;
    if (x.code >= 200 && x.code < 300) return { recipient: x.recipient, kind: "delivered", detail };
    if (x.code >= 500) {
      const enhanced = /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})/.exec(x.text)?.[1];
      return { recipient: x.recipient, kind: "failed", detail, status: enhanced ?? "5.0.0" };
    }
    return { recipient: x.recipient, kind: "deferred", detail };
  }
}
