// Push notifications as the reference relay sends them (chatmail-relay.md §4.4): for each new
// message not sent by the recipient itself, every device token of the recipient is POSTed to
// the notification service. Jobs live in the store, so they survive restarts; retries after 0,
// 8, 64, 512 and 4096 s within 5 hours; HTTP 410 removes the token. Delivery never waits on it.
// A job whose token was removed or expired meanwhile is dropped unsent.

import type { PushStore } from "../store/types.ts";
import type { Logger } from "../log/mod.ts";

export const TOKEN_LIFETIME_MS = 90 * 24 * 3600_000;
const DEADLINE_MS = 5 * 3600_000;
const MAX_TRIES = 5;
const REQUEST_TIMEOUT_MS = 60_000;
/** A claimed job is due again for anyone after this long (its request has timed out by then). */
const LEASE_MS = REQUEST_TIMEOUT_MS + 30_000;
/** Requests under way at once: a service that answers nobody is not sent more than this. */
const MAX_IN_FLIGHT = 100;

export interface PushOptions {
  store: PushStore;
  /** Current notification URL ("" disables). */
  url: () => string;
  enabled: () => boolean;
  fetch?: typeof fetch;
  now?: () => number;
  log?: Logger;
  onResult?: (ok: boolean) => void;
}

export function retryDelaySeconds(attempt: number): number {
  return attempt === 0 ? 0 : 8 ** attempt;
}

export class PushService {
  #o: PushOptions;
  #now: () => number;
  #fetch: typeof fetch;
  #running: Promise<void> | null = null;
  #again = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  /** Requests under way; a run does not wait for them, so one slow request delays no other. */
  #inFlight = new Set<Promise<void>>();
  /** Aborted by stop(): a request the service does not answer does not hold the shutdown. */
  #stopping = new AbortController();

  constructor(options: PushOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#fetch = options.fetch ?? fetch;
  }

  start(intervalMs = 2_000) {
    if (this.#stopping.signal.aborted) this.#stopping = new AbortController();
    this.#timer = setInterval(() => this.kick(), intervalMs);
    this.kick();
  }

  async stop() {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
    this.#stopping.abort();
    await Promise.all(this.#inFlight);
  }

  /**
   * A message was stored for the account: queue one notification per device token. `seen`:
   * whether the account had any token when the message was stored (the delivery reads it in
   * its transaction); without one there is nothing to read.
   */
  async notify(accountId: number, seen?: { hasPushTokens: boolean }): Promise<void> {
    if (!this.#o.enabled() || !this.#o.url() || seen?.hasPushTokens === false) return;
    const now = this.#now();
    const tokens = await this.#o.store.listPushTokens(accountId, now - TOKEN_LIFETIME_MS);
    // A token with a job already gets no second one (the store knows, whichever instance
    // queued or sends it): one wake-up covers many messages.
    // Each token on its own: a store error for one does not keep the others from their job.
    let failure: { error: unknown } | null = null;
    let queued = 0;
    for (const { token } of tokens) {
      try {
        await this.#o.store.enqueuePush({ accountId, token, now });
        queued++;
      } catch (error) {
        failure ??= { error };
      }
    }
    // Stopped (or never started): the job waits in the store for the next start.
    if (queued > 0 && this.#timer) this.kick();
    if (failure) throw failure.error;
  }

  kick(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#start().then(() => {}, (err) => {
      this.#o.log?.error("push run failed", { error: String(err) });
    }).finally(() => {
      this.#running = null;
      if (this.#again) {
        this.#again = false;
        this.kick();
      }
    });
  }

  /**
   * Sends every due job once. Jobs are claimed for a lease first: with several instances on one
   * store each job is sent by one of them (and by another if that one dies before finishing).
   */
  async runOnce(): Promise<void> {
    await Promise.all(await this.#start());
  }

  /** Claims due jobs (as many as there is room for) and starts their requests. */
  async #start(): Promise<Promise<void>[]> {
    const room = MAX_IN_FLIGHT - this.#inFlight.size;
    if (room <= 0) return [];
    const jobs = await this.#o.store.claimPushJobs(this.#now(), room, LEASE_MS);
    return jobs.map((job) => {
      const sending: Promise<void> = this.#send(job)
        .catch((err) => this.#o.log?.error("push job failed", { error: String(err) }))
        .finally(() => this.#inFlight.delete(sending));
      this.#inFlight.add(sending);
      return sending;
    });
  }

  async #send(
    job: { id: number; accountId: number; token: string; attempt: number; startAt: number },
  ) {
    const { store } = this.#o;
    const stopping = this.#stopping.signal;
    // The token may have gone since the job was queued (SETMETADATA NIL, dropped as the oldest
    // at the limit, expired): the device no longer wants this account's wake-ups.
    const live = await store.listPushTokens(job.accountId, this.#now() - TOKEN_LIFETIME_MS);
    if (!live.some((t) => t.token === job.token)) {
      this.#o.log?.debug("push job dropped: its token is no longer registered", {
        accountId: job.accountId,
      });
      return await store.deletePushJob(job.id);
    }
    let status = 0;
    try {
      const res = await this.#fetch(this.#o.url(), {
        method: "POST",
        body: job.token,
        // A followed 301/302 would turn the POST into a GET to wherever the service points:
        // a redirect is a failure like any other answer but 200 and 410.
        redirect: "manual",
        signal: AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), stopping]),
      });
      status = res.status;
      await res.body?.cancel();
      if (status >= 300 && status < 400) {
        this.#o.log?.info("push service answered a redirect, not followed", {
          status,
          location: res.headers.get("location") ?? "",
        });
      }
    } catch (err) {
      // Cut short by stop(): the job is due again as it was, for the next start.
      if (stopping.aborted) return await store.reschedulePush(job.id, job.attempt, this.#now());
      this.#o.log?.info("push request failed", { error: String(err) });
    }
    if (status === 200 || status === 410) {
      if (status === 410) await store.removePushToken(job.accountId, job.token);
      await store.deletePushJob(job.id);
      this.#o.onResult?.(status === 200);
      return;
    }
    this.#o.onResult?.(false);
    const attempt = job.attempt + 1;
    const nextAt = this.#now() + retryDelaySeconds(attempt) * 1000;
    if (attempt >= MAX_TRIES || nextAt > job.startAt + DEADLINE_MS) {
      this.#o.log?.info("push notification dropped after retries", { attempts: attempt });
      await store.deletePushJob(job.id);
      return;
    }
    await store.reschedulePush(job.id, attempt, nextAt);
  }
}
