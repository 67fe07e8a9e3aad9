// In-process event bus: services publish after commit; IMAP sessions (IDLE) and push subscribe
// per account. Handlers run synchronously and must only schedule work, never block.

export type RelayEvent =
  | {
    type: "mail.delivered";
    accountId: number;
    address: string;
    mailboxId: number;
    uid: number;
    /** The message was sent by the recipient itself (bcc-self, multi-device): no push. */
    fromSelf: boolean;
  }
  /** Anything else that changed a mailbox's contents or flags (APPEND, STORE, EXPUNGE, MOVE…). */
  | { type: "mailbox.changed"; accountId: number; mailboxId: number; origin?: string }
  | { type: "mailboxes.changed"; accountId: number }
  | { type: "account.deleted"; accountId: number }
  | { type: "settings.changed"; key: string }
  /** Mail from another relay's domain was accepted (its origin checked): that peer is up. */
  | { type: "federation.received"; domain: string };

export type RelayEventHandler = (event: RelayEvent) => void;

export class EventBus {
  #byAccount = new Map<number, Set<RelayEventHandler>>();
  #all = new Set<RelayEventHandler>();

  publish(event: RelayEvent): void {
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
