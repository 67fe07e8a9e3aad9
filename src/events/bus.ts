// In-process event bus: services publish after commit; IMAP sessions (IDLE) and push subscribe
// per account. Handlers run synchronously and must only schedule work, never block.
//
// Several instances on one store (PostgreSQL) connect their buses through a bridge: what one
// publishes reaches the others' subscribers too, marked `remote` (a message accepted on
// instance A wakes an IDLE session on instance B). Work that must happen once per event (a push
// notification, quota trimming) is done by the instance that published it: handlers doing such
// work skip remote events.

export type RelayEvent =
  & (
    | {
      type: "mail.delivered";
      accountId: number;
      address: string;
      mailboxId: number;
      uid: number;
      /** The message was sent by the recipient itself (bcc-self, multi-device): no push. */
      fromSelf: boolean;
      /**
       * The account as the delivery's transaction left it, so its follow-ups need no read:
       * bytes used after it, quota (null: the default), whether it has any push token.
       */
      usedBytes: number;
      quotaBytes: number | null;
      hasPushTokens: boolean;
    }
    /** Anything else that changed a mailbox's contents or flags (APPEND, STORE, EXPUNGE, MOVE…). */
    | { type: "mailbox.changed"; accountId: number; mailboxId: number; origin?: string }
    | { type: "mailboxes.changed"; accountId: number }
    | { type: "account.deleted"; accountId: number }
    | { type: "settings.changed"; key: string }
    /** Mail from another relay's domain was accepted (its origin checked): that peer is up. */
    | { type: "federation.received"; domain: string }
    /** Mail for other relays was queued: the instance running the outbound worker loads it. */
    | { type: "outbound.queued" }
    /** An operator made a queue entry due now: the outbound worker wakes its destinations. */
    | { type: "outbound.retry"; queueId: number }
  )
  & {
    /** Published by another instance (arrived over the bridge). */
    remote?: boolean;
  };

export type RelayEventHandler = (event: RelayEvent) => void;

/** Carries this instance's events to the other instances (e.g. PostgreSQL NOTIFY). */
export interface EventBridge {
  send(event: RelayEvent): void;
}

export class EventBus {
  #byAccount = new Map<number, Set<RelayEventHandler>>();
  #all = new Set<RelayEventHandler>();
  #bridge: EventBridge | null = null;

  publish(event: RelayEvent): void {
    this.#deliver(event);
    if (this.#bridge && !event.remote) this.#bridge.send(event);
  }

  /** An event another instance published: delivered here marked remote, never sent back. */
  receive(event: RelayEvent): void {
    this.#deliver({ ...event, remote: true });
  }

  /**
   * The bridge lost events (its connection dropped): every account with a subscriber is told
   * its mailboxes may have changed, so sessions look for themselves.
   */
  resync(): void {
    for (const accountId of [...this.#byAccount.keys()]) {
      this.#deliver({ type: "mailboxes.changed", accountId, remote: true });
    }
  }

  /** Sends published events to other instances from now on; returns the disconnect. */
  connect(bridge: EventBridge): () => void {
    this.#bridge = bridge;
    return () => {
      if (this.#bridge === bridge) this.#bridge = null;
    };
  }

  #deliver(event: RelayEvent) {
    if ("accountId" in event) {
      const subs = this.#byAccount.get(event.accountId);
      if (subs) { for (const h of [...subs]) this.#call(h, event); }
    }
    for (const h of [...this.#all]) this.#call(h, event);
  }

  #call(h: RelayEventHandler, event: RelayEvent) {
    try {
      h(event);
    } catch (err) {
      console.error("event handler failed:", err);
    }
  }

  /** Subscribes to one account's events until the signal aborts (or the returned function runs). */
  subscribeAccount(
    accountId: number,
    handler: RelayEventHandler,
    signal?: AbortSignal,
  ): () => void {
    let set = this.#byAccount.get(accountId);
    if (!set) this.#byAccount.set(accountId, set = new Set());
    set.add(handler);
    const off = () => {
      const s = this.#byAccount.get(accountId);
      if (!s) return;
      s.delete(handler);
      if (s.size === 0) this.#byAccount.delete(accountId);
    };
    signal?.addEventListener("abort", off, { once: true });
    return off;
  }

  subscribeAll(handler: RelayEventHandler, signal?: AbortSignal): () => void {
    this.#all.add(handler);
    const off = () => this.#all.delete(handler);
    signal?.addEventListener("abort", off, { once: true });
    return off;
  }

  /** Number of per-account subscriptions (IDLE-capable sessions). */
  get subscriberCount(): number {
    let n = 0;
    for (const s of this.#byAccount.values()) n += s.size;
    return n;
  }
}
