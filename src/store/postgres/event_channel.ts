// The bridge between the event buses of instances sharing one PostgreSQL database: LISTEN/NOTIFY
// on one channel. Events published here within one turn of the event loop leave as one
// statement (pg_notify per payload of up to ~7 kB, PostgreSQL's limit is 8000 bytes); every
// instance receives them on its listening connection and hands them to its bus, except its own.
// Instances also send a beacon every few seconds (their live figures for the admin dashboard).
//
// NOTIFY makes its transaction commit, so it goes through the spool pool (synchronous_commit
// off): a notification lost in a database crash costs nothing, sessions resync on reconnect.
// When the listening connection drops, postgres.js reconnects and listens again; what was sent
// meanwhile is lost, so the bus is told to resync (every IDLE session looks at its mailbox).

import type { EventBridge, RelayEvent } from "../../events/bus.ts";
import type { Sql } from "./connection.ts";

export const CHANNEL = "tern_events";
/** Payload bytes per NOTIFY (PostgreSQL refuses 8000 and more). */
const MAX_PAYLOAD = 7000;

export interface ChannelReceiver {
  /** An event another instance published. */
  receive(event: RelayEvent): void;
  /** Events may have been lost (the listening connection was replaced). */
  resync(): void;
  /** Another instance's beacon. */
  beacon?(instance: string, data: Record<string, unknown>): void;
}

interface Payload {
  /** Sending instance. */
  i: string;
  /** Events, or a beacon. */
  e?: RelayEvent[];
  b?: Record<string, unknown>;
}

export class PgEventChannel implements EventBridge {
  readonly instance: string;
  #sql: Sql;
  #notify: Sql;
  #receiver: ChannelReceiver;
  #onError: (err: unknown) => void;
  #pending: RelayEvent[] = [];
  #scheduled = false;
  #listening: { unlisten(): Promise<void> } | null = null;
  #listens = 0;
  #closed = false;
  #inflight = new Set<Promise<unknown>>();

  constructor(options: {
    /** Pool for LISTEN (postgres.js opens its own connection for it). */
    sql: Sql;
    /** Pool for NOTIFY (asynchronous commit). */
    notify: Sql;
    instance: string;
    receiver: ChannelReceiver;
    onError?: (err: unknown) => void;
  }) {
    this.#sql = options.sql;
    this.#notify = options.notify;
    this.instance = options.instance;
    this.#receiver = options.receiver;
    this.#onError = options.onError ?? (() => {});
  }

  /** Starts listening; resolves once LISTEN is in place. */
  async start(): Promise<void> {
    this.#listening = await this.#sql.listen(
      CHANNEL,
      (text) => this.#received(text),
      () => {
        // Called again after every reconnect: what was sent meanwhile did not arrive.
        if (this.#listens++ > 0 && !this.#closed) this.#receiver.resync();
      },
    );
  }

  send(event: RelayEvent): void {
    if (this.#closed) return;
    this.#pending.push(event);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const events = this.#pending.splice(0);
      const payloads: string[] = [];
      let batch: RelayEvent[] = [];
      const flush = () => {
        if (batch.length) payloads.push(JSON.stringify({ i: this.instance, e: batch }));
        batch = [];
      };
      let size = 0;
      for (const e of events) {
        const n = JSON.stringify(e).length + 1;
        if (size + n > MAX_PAYLOAD) {
          flush();
          size = 0;
        }
        batch.push(e);
        size += n;
      }
      flush();
      this.#send(payloads);
    });
  }

  /** Sends this instance's live figures to the others. */
  beacon(data: Record<string, unknown>): void {
    if (this.#closed) return;
    const text = JSON.stringify({ i: this.instance, b: data } satisfies Payload);
    if (text.length <= MAX_PAYLOAD) this.#send([text]);
  }

  #send(payloads: string[]) {
    if (payloads.length === 0) return;
    const p = this.#notify`SELECT pg_notify(${CHANNEL}, p) FROM unnest(${payloads}::text[]) AS p`
      .then(() => {}, (err) => this.#onError(err))
      .finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }

  #received(text: string) {
    let p: Payload;
    try {
      p = JSON.parse(text);
    } catch (err) {
      this.#onError(err);
      return;
    }
    if (!p || typeof p !== "object" || p.i === this.instance || this.#closed) return;
    if (Array.isArray(p.e)) {
      for (const e of p.e) {
        if (e && typeof e === "object" && typeof e.type === "string") this.#receiver.receive(e);
      }
    }
    if (p.b && typeof p.b === "object") this.#receiver.beacon?.(p.i, p.b);
  }

  /** Stops listening; waits for notifications being sent. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    await this.#listening?.unlisten().catch((err) => this.#onError(err));
  }
}
