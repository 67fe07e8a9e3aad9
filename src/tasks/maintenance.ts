// Scheduled maintenance as the reference relay runs it (chatmail-relay.md §6): expire old mail,
// large mail and inactive accounts, trim a mailbox past 75 % of its quota down to 70 % (never
// touching mail younger than 24 h), and free stored bodies nothing references any more. Then the
// store's own upkeep, each in bounded steps: forget old expunge tombstones, delete orphaned body
// files, give free database pages back to the file system.

import type { MessageRecord, Store } from "../store/types.ts";
import type { Logger } from "../log/mod.ts";

const DAY = 86_400_000;
const LARGE_BYTES = 200 * 1024;
const BATCH = 500;
/** Spools and unreferenced body files younger than this may still be in use. */
const FILE_GRACE_MS = DAY;
/** Free pages given back per step (4 KiB each), and steps per run. */
const RECLAIM_PAGES = 2048;
const RECLAIM_STEPS = 512;

export interface MaintenanceOptions {
  store: Store;
  retention: {
    deleteMailsAfterDays: number;
    deleteLargeAfterDays: number;
    deleteInactiveUsersAfterDays: number;
    /** Tombstones of expunged messages are kept this long (QRESYNC). */
    forgetExpungedAfterDays?: number;
  };
  defaultQuotaBytes: number;
  /** Reports removed messages so IMAP sessions see the expunges. */
  onRemoved?(accountId: number, mailboxId: number): void;
  onAccountDeleted?(accountId: number): void;
  /**
   * Several instances on one store: claims a task's scheduled run for `periodMs`; false when
   * another instance took it. Without it every scheduled run runs every task (one instance).
   */
  claim?(task: string, periodMs: number): Promise<boolean>;
  now?: () => number;
  log?: Logger;
}

export interface TaskInfo {
  name: string;
  doc: string;
}

export const TASKS: readonly TaskInfo[] = [
  { name: "expire-mail", doc: "delete messages older than delete_mails_after days" },
  { name: "expire-large", doc: "delete messages over 200 kB older than delete_large_after days" },
  {
    name: "expire-accounts",
    doc: "delete accounts without login for delete_inactive_users_after days",
  },
  { name: "quota-trim", doc: "trim mailboxes over 75 % of quota down to 70 %" },
  { name: "free-bodies", doc: "free stored bodies no message or queue entry references" },
  {
    name: "forget-expunged",
    doc: "forget records of messages expunged more than forget_expunged_after days ago",
  },
  {
    name: "sweep-files",
    doc:
      "compact body segments more than half deleted; delete body files and spools a crash left behind (after a day)",
  },
  { name: "reclaim-space", doc: "give free database pages back to the file system" },
];

export class Maintenance {
  #o: MaintenanceOptions;
  #now: () => number;
  #timer: ReturnType<typeof setInterval> | null = null;
  #running: Promise<unknown> | null = null;

  constructor(options: MaintenanceOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Runs every task now, then every `intervalMs` (default hourly). With a claim (several
   * instances) each instance looks every few minutes and runs the tasks no other instance ran
   * within the interval: each task runs once per interval, wherever.
   */
  start(intervalMs = 3600_000) {
    const tick = () => {
      if (!this.#running) {
        this.#running = this.runScheduled(intervalMs).catch((err) =>
          this.#o.log?.error("maintenance failed", { error: String(err) })
        ).finally(() => (this.#running = null));
      }
    };
    this.#timer = setInterval(tick, this.#o.claim ? Math.min(intervalMs, 5 * 60_000) : intervalMs);
    tick();
  }

  /** The tasks this instance may run now (all of them without a claim); what each did. */
  async runScheduled(periodMs: number): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const t of TASKS) {
      if (this.#o.claim && !(await this.#o.claim(t.name, periodMs))) continue;
      out[t.name] = await this.run(t.name);
      this.#o.log?.info("maintenance task ran", { task: t.name, result: out[t.name] });
    }
    return out;
  }

  async stop() {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  async runAll(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const t of TASKS) out[t.name] = await this.run(t.name);
    return out;
  }

  /** Runs one task by name; returns what it did. */
  async run(name: string): Promise<string> {
    const r = this.#o.retention;
    const now = this.#now();
    switch (name) {
      case "expire-mail":
        return `${await this.#removeWhere({
          olderThan: now - r.deleteMailsAfterDays * DAY,
        })} messages deleted`;
      case "expire-large":
        return `${await this.#removeWhere({
          olderThan: now - r.deleteLargeAfterDays * DAY,
          largerThan: LARGE_BYTES,
        })} messages deleted`;
      case "expire-accounts": {
        let n = 0;
        const before = now - r.deleteInactiveUsersAfterDays * DAY;
        for (const a of await this.#o.store.listInactiveAccounts(before, BATCH)) {
          if (await this.#o.store.deleteAccount(a.id)) {
            n++;
            this.#o.onAccountDeleted?.(a.id);
          }
        }
        return `${n} accounts deleted`;
      }
      case "quota-trim": {
        let n = 0;
        let accounts = 0;
        let offset = 0;
        while (true) {
          const page = await this.#o.store.listAccounts({ offset, limit: BATCH });
          for (const a of page.items) {
            const removed = await this.trimQuota(a.id);
            if (removed) accounts++;
            n += removed;
          }
          offset += page.items.length;
          if (!page.items.length || offset >= page.total) break;
        }
        return `${n} messages deleted in ${accounts} accounts`;
      }
      case "free-bodies":
        return `${await this.#o.store.freeUnreferencedBodies()} bodies freed`;
      case "forget-expunged": {
        const before = now - (r.forgetExpungedAfterDays ?? 30) * DAY;
        let n = 0;
        for (let got = BATCH; got === BATCH;) {
          got = await this.#o.store.purgeTombstones(before, BATCH);
          n += got;
        }
        return `${n} expunge records forgotten`;
      }
      case "sweep-files":
        return `${await this.#o.store.sweepBodyFiles(now - FILE_GRACE_MS)} files deleted`;
      case "reclaim-space": {
        let pages = 0;
        for (let i = 0; i < RECLAIM_STEPS; i++) {
          const step = await this.#o.store.reclaimSpace(RECLAIM_PAGES);
          pages += step.freed;
          if (step.remaining === 0 || step.freed === 0) break;
        }
        return `${pages} pages given back`;
      }
      default:
        throw new Error(`Unknown task "${name}"; known: ${TASKS.map((t) => t.name).join(", ")}`);
    }
  }

  /**
   * Past 75 % of its quota a mailbox loses its oldest messages until it is at 70 %; messages
   * younger than 24 h are never deleted (trimming stops at the first one). Returns how many.
   * `seen`: the account's use and quota as a delivery just committed them; under the threshold
   * there nothing is read (each delivery reports the use after it, APPENDs included).
   */
  async trimQuota(
    accountId: number,
    seen?: { usedBytes: number; quotaBytes: number | null },
  ): Promise<number> {
    const { store } = this.#o;
    if (seen && seen.usedBytes <= (seen.quotaBytes ?? this.#o.defaultQuotaBytes) * 0.75) return 0;
    const account = await store.getAccountById(accountId);
    if (!account) return 0;
    const limit = account.quotaBytes ?? this.#o.defaultQuotaBytes;
    let used = account.usedBytes;
    if (used <= limit * 0.75) return 0;
    const target = limit * 0.7;
    const youngest = this.#now() - DAY;
    const victims: (MessageRecord & { accountId: number })[] = [];
    for (const m of await store.listMessagesForRetention({ accountId, limit: 10_000 })) {
      if (used <= target || m.internalDate >= youngest) break;
      victims.push(m);
      used -= m.size;
    }
    const removed = await this.#remove(victims);
    if (removed) this.#o.log?.info("quota trimmed", { removed });
    return removed;
  }

  async #removeWhere(q: { olderThan: number; largerThan?: number }): Promise<number> {
    let total = 0;
    while (true) {
      const batch = await this.#o.store.listMessagesForRetention({ ...q, limit: BATCH });
      if (!batch.length) return total;
      const n = await this.#remove(batch);
      total += n;
      if (n === 0) return total;
    }
  }

  async #remove(messages: (MessageRecord & { accountId: number })[]): Promise<number> {
    const byMailbox = new Map<number, { accountId: number; uids: number[] }>();
    for (const m of messages) {
      const e = byMailbox.get(m.mailboxId) ?? { accountId: m.accountId, uids: [] };
      e.uids.push(m.uid);
      byMailbox.set(m.mailboxId, e);
    }
    let n = 0;
    for (const [mailboxId, { accountId, uids }] of byMailbox) {
      const removed = await this.#o.store.removeMessages(mailboxId, uids);
      n += removed.length;
      if (removed.length) this.#o.onRemoved?.(accountId, mailboxId);
    }
    return n;
  }
}
