// Several instances on one PostgreSQL store: the outbound worker keeps its per-destination
// queues in memory (federation/outbound.ts), so two workers would deliver the same mail twice.
// One instance runs it at a time: the one holding a session-level lock in the database. The
// others try again every few seconds and take over when the holder dies (its session ends and
// the lock is free). A worker that loses the lock (its connection dropped) stops at once; a
// fresh one starts when the lock comes back, loading the queue from the store.
//
// Every instance queues mail and answers the admin API: it tells the worker over the event bus
// (bridged between instances) that mail was queued or an entry retried.

import type { EventBus } from "../events/mod.ts";
import type { OutboundService } from "../federation/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Store } from "../store/types.ts";

/** The lock (store/postgres/leader_lock.ts). */
export interface LeaderLock {
  /** Takes the lock if free, or checks it is still held; true while held. */
  acquire(): Promise<boolean>;
  close(): Promise<void>;
}

/** How often an instance without the lock tries, and the holder checks it still has it. */
export const LEADER_RETRY_MS = 3_000;

export class OutboundLeader {
  #lock: LeaderLock;
  #create: () => OutboundService;
  #store: Pick<Store, "getQueueEntry" | "retryQueueEntry">;
  #bus: EventBus;
  #log?: Logger;
  #now: () => number;
  #everyMs: number;
  /** A worker never started: the destinations summary where the worker runs elsewhere. */
  #idle: OutboundService;
  #current: OutboundService | null = null;
  #looking: Promise<void> | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #off: (() => void) | null = null;
  #closed = false;

  constructor(options: {
    lock: LeaderLock;
    create: () => OutboundService;
    /** A worker never started (the relay's `outbound` where it runs elsewhere). */
    idle: OutboundService;
    store: Pick<Store, "getQueueEntry" | "retryQueueEntry">;
    bus: EventBus;
    log?: Logger;
    now?: () => number;
    everyMs?: number;
  }) {
    this.#lock = options.lock;
    this.#create = options.create;
    this.#store = options.store;
    this.#bus = options.bus;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#everyMs = options.everyMs ?? LEADER_RETRY_MS;
    this.#idle = options.idle;
  }

  /** Whether this instance runs the outbound worker now. */
  get leading(): boolean {
    return this.#current !== null;
  }

  /** Tries the lock once (the first instance up takes it before it serves), then keeps trying. */
  async start(): Promise<void> {
    this.#off = this.#bus.subscribeAll((e) => {
      if (e.type === "outbound.queued") this.#current?.kick();
      else if (e.type === "federation.received") this.#current?.peerAnswered(e.domain);
      else if (e.type === "outbound.retry" && e.remote && this.#current) {
        this.#current.retryEntry(e.queueId).catch((err) =>
          this.#log?.error("outbound retry failed", { error: String(err) })
        );
      }
    });
    await this.#look();
    this.#timer = setInterval(() => this.#look(), this.#everyMs);
  }

  /** Mail was queued on this instance: the worker, here or on another instance, loads it. */
  queued(): void {
    this.#bus.publish({ type: "outbound.queued" });
  }

  destinations(limit?: number) {
    return (this.#current ?? this.#idle).destinations(limit);
  }

  async retryEntry(id: number): Promise<boolean> {
    if (this.#current) return await this.#current.retryEntry(id);
    const entry = await this.#store.getQueueEntry(id);
    if (!entry || !(await this.#store.retryQueueEntry(id, this.#now()))) return false;
    this.#bus.publish({ type: "outbound.retry", queueId: id });
    return true;
  }

  #look(): Promise<void> {
    this.#looking ??= this.#check().finally(() => (this.#looking = null));
    return this.#looking;
  }

  async #check(): Promise<void> {
    if (this.#closed) return;
    let held = false;
    try {
      held = await this.#lock.acquire();
    } catch (err) {
      this.#log?.error("outbound lock: database unreachable", { error: String(err) });
    }
    if (this.#closed) return;
    if (held && !this.#current) {
      this.#log?.info("outbound: this instance runs the outbound worker");
      this.#current = this.#create();
      this.#current.start();
    } else if (!held && this.#current) {
      // Another instance may hold it now: stop before delivering anything twice.
      this.#log?.warn("outbound: lock lost, the worker stops here");
      const worker = this.#current;
      this.#current = null;
      await worker.stop();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#off?.();
    await this.#looking;
    const worker = this.#current;
    this.#current = null;
    // The worker stops before the lock goes: the next holder starts where it left off.
    await worker?.stop();
    await this.#lock.close();
  }
}
