// Several tern instances on one PostgreSQL store (README "Growing beyond one machine"): what the
// services keep in memory when alone is kept in the database instead (login throttle, send rate,
// just-in-time creations, which instance runs a scheduled task), the event buses are bridged
// (LISTEN/NOTIFY: mail accepted on one instance wakes IDLE sessions on the others), and every
// instance announces its live figures so any admin dashboard shows all of them. One instance at a
// time runs the outbound worker (outbound_leader.ts).

import type { Admission, LoginGate, LoginThrottleOptions } from "../auth/mod.ts";
import { throttleParams } from "../auth/mod.ts";
import type { CreationRate } from "../accounts/mod.ts";
import type { RateDecision, SendRate } from "../delivery/mod.ts";
import type { EventBus } from "../events/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { InstanceFigures } from "../admin/mod.ts";
import type { PgEventChannel, PostgresStore } from "../store/postgres/mod.ts";

/** The login throttle's rules (auth/login_throttle.ts) over state in the database. */
export class SharedLoginGate implements LoginGate {
  #store: PostgresStore;
  #params: ReturnType<typeof throttleParams>;
  #now: () => number;

  constructor(store: PostgresStore, options: LoginThrottleOptions = {}) {
    this.#store = store;
    this.#params = throttleParams(options);
    this.#now = options.now ?? Date.now;
  }

  admit(ip: string, account: string): Promise<Admission> {
    return this.#store.shared.loginAdmit(ip, account, this.#now(), this.#params);
  }

  recordFailure(ip: string, account: string): Promise<void> {
    return this.#store.shared.loginFailure(ip, account, this.#now(), this.#params);
  }

  recordSuccess(ip: string, account: string): Promise<void> {
    return this.#store.shared.loginSuccess(ip, account, this.#now(), this.#params);
  }

  /** Failures counted for a key now (tests). */
  failures(kind: "ip" | "acct", key: string): Promise<number> {
    return this.#store.shared.loginFailures(`${kind} ${key}`, this.#now(), this.#params.windowMs);
  }
}

/** The send rate (GCRA, as delivery/rate_limit.ts) on the database's clock. */
export class SharedSendRate implements SendRate {
  #store: PostgresStore;
  #intervalMs: number;
  #toleranceMs: number;

  constructor(store: PostgresStore, options: { perMinute: number; burst: number }) {
    this.#store = store;
    this.#intervalMs = 60_000 / Math.max(1, options.perMinute);
    this.#toleranceMs = this.#intervalMs * Math.max(0, options.burst - 1);
  }

  take(key: string): Promise<RateDecision> {
    return this.#store.shared.takeSendRate(key, this.#intervalMs, this.#toleranceMs);
  }
}

export class SharedCreationRate implements CreationRate {
  #store: PostgresStore;

  constructor(store: PostgresStore) {
    this.#store = store;
  }

  take(ip: string, max: number, now: number): Promise<boolean> {
    return this.#store.shared.takeCreation(ip, max, now);
  }
}

/** How often an instance announces its figures, and after how long silence it counts as gone. */
const BEACON_MS = 5_000;
const GONE_MS = 3 * BEACON_MS;

export class Cluster {
  readonly instance: string;
  #store: PostgresStore;
  #bus: EventBus;
  #log?: Logger;
  #channel: PgEventChannel | null = null;
  #disconnect: (() => void) | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #peers = new Map<string, InstanceFigures>();
  #figures: (() => Omit<InstanceFigures, "id" | "seenAt">) | null = null;

  constructor(store: PostgresStore, bus: EventBus, log?: Logger) {
    this.#store = store;
    this.#bus = bus;
    this.#log = log;
    this.instance = `${Deno.hostname()}:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`;
  }

  /** Bridges the bus; resolves once this instance hears the others. */
  async start(): Promise<void> {
    const channel = this.#store.eventChannel({
      instance: this.instance,
      receiver: {
        receive: (e) => this.#bus.receive(e),
        resync: () => {
          this.#log?.info("cluster: event channel reconnected; sessions resync");
          this.#bus.resync();
        },
        beacon: (id, data) => this.#beacon(id, data),
      },
      onError: (err) => this.#log?.error("cluster: event channel", { error: String(err) }),
    });
    await channel.start();
    this.#channel = channel;
    this.#disconnect = this.#bus.connect(channel);
    this.#timer = setInterval(() => this.#announce(), BEACON_MS);
  }

  /** Where this instance's figures come from (the protocols' metrics, once they run). */
  setFigures(figures: () => Omit<InstanceFigures, "id" | "seenAt">): void {
    this.#figures = figures;
    this.#announce();
  }

  /** This instance first, then every other instance heard from recently. */
  instances(): InstanceFigures[] {
    const now = Date.now();
    const out: InstanceFigures[] = [];
    if (this.#figures) out.push({ id: this.instance, seenAt: now, ...this.#figures() });
    for (const [id, p] of this.#peers) {
      if (now - p.seenAt > GONE_MS) this.#peers.delete(id);
      else out.push(p);
    }
    return out;
  }

  #announce() {
    if (!this.#figures || !this.#channel) return;
    this.#channel.beacon(this.#figures() as unknown as Record<string, unknown>);
  }

  #beacon(id: string, data: Record<string, unknown>) {
    const d = data as Partial<InstanceFigures>;
    if (typeof d.host !== "string" || typeof d.idleSessions !== "number") return;
    this.#peers.set(id, {
      id,
      host: d.host,
      startedAt: Number(d.startedAt) || 0,
      connections: typeof d.connections === "object" && d.connections ? d.connections : {},
      idleSessions: d.idleSessions,
      messagesPerMinute: d.messagesPerMinute ?? { in: 0, out: 0 },
      history: Array.isArray(d.history) ? d.history : [],
      seenAt: Date.now(),
    });
  }

  close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#disconnect?.();
    this.#disconnect = null;
    // The store's close() closes the channel (after the writes still in flight).
    return Promise.resolve();
  }
}
