// Mailbox operations for IMAP (and admin): the store's operations plus the bus events that wake
// every other session of the account after each committed change.

import type { EventBus, RelayEventHandler } from "../events/mod.ts";
import type {
  CopyResult,
  FlagUpdate,
  FlagUpdateResult,
  MailboxChanges,
  MailboxRecord,
  MessageRecord,
  Store,
} from "../store/types.ts";
import { spoolBytes } from "../store/message_input.ts";

export interface MailboxServiceOptions {
  store: Store;
  bus: EventBus;
  defaultQuotaBytes: number;
  now?: () => number;
}

export class MailboxService {
  #store: Store;
  #bus: EventBus;
  #now: () => number;
  readonly defaultQuotaBytes: number;

  constructor(options: MailboxServiceOptions) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.defaultQuotaBytes = options.defaultQuotaBytes;
    this.#now = options.now ?? Date.now;
  }

  #changed(accountId: number, mailboxId: number) {
    this.#bus.publish({ type: "mailbox.changed", accountId, mailboxId });
  }

  #listChanged(accountId: number) {
    this.#bus.publish({ type: "mailboxes.changed", accountId });
  }

  subscribe(accountId: number, handler: RelayEventHandler, signal?: AbortSignal): () => void {
    return this.#bus.subscribeAccount(accountId, handler, signal);
  }

  listMailboxes(accountId: number): Promise<MailboxRecord[]> {
    return this.#store.listMailboxes(accountId);
  }

  getMailbox(accountId: number, name: string): Promise<MailboxRecord | null> {
    return this.#store.getMailbox(accountId, name);
  }

  getMailboxById(mailboxId: number): Promise<MailboxRecord | null> {
    return this.#store.getMailboxById(mailboxId);
  }

  async createMailbox(
    accountId: number,
    name: string,
    specialUse?: string | null,
  ): Promise<MailboxRecord> {
    const mb = await this.#store.createMailbox(accountId, name, specialUse);
    this.#listChanged(accountId);
    return mb;
  }

  async deleteMailbox(accountId: number, name: string): Promise<void> {
    const mb = await this.#store.getMailbox(accountId, name);
    await this.#store.deleteMailbox(accountId, name);
    this.#listChanged(accountId);
    if (mb) this.#changed(accountId, mb.id);
  }

  async renameMailbox(accountId: number, from: string, to: string): Promise<void> {
    const mb = await this.#store.getMailbox(accountId, from);
    await this.#store.renameMailbox(accountId, from, to);
    this.#listChanged(accountId);
    if (mb) this.#changed(accountId, mb.id);
  }

  setSubscribed(accountId: number, name: string, subscribed: boolean): Promise<void> {
    return this.#store.setSubscribed(accountId, name, subscribed);
  }

  listSubscriptions(accountId: number): Promise<string[]> {
    return this.#store.listSubscriptions(accountId);
  }

  async append(input: {
    accountId: number;
    mailboxName: string;
    data: Uint8Array;
    flags: string[];
    internalDate?: number;
  }): Promise<{ mailboxId: number; uidValidity: number; uid: number; modSeq: number }> {
    const { data, ...rest } = input;
    const spooled = await spoolBytes(this.#store, data);
    try {
      const r = await this.#store.append({
        ...rest,
        body: spooled.body,
        internalDate: input.internalDate ?? this.#now(),
        defaultQuotaBytes: this.defaultQuotaBytes,
      });
      this.#changed(input.accountId, r.mailboxId);
      return r;
    } finally {
      await spooled.discard();
    }
  }

  listMessages(mailboxId: number): Promise<MessageRecord[]> {
    return this.#store.listMessages(mailboxId);
  }

  getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]> {
    return this.#store.getMessages(mailboxId, uids);
  }

  changesSince(mailboxId: number, modSeq: number): Promise<MailboxChanges> {
    return this.#store.changesSince(mailboxId, modSeq);
  }

  readBody(bodyId: number): Promise<Uint8Array | null> {
    return this.#store.readBody(bodyId);
  }

  claimRecent(mailboxId: number): Promise<number[]> {
    return this.#store.claimRecent(mailboxId);
  }

  async setFlags(
    accountId: number,
    mailboxId: number,
    update: FlagUpdate,
  ): Promise<FlagUpdateResult> {
    const r = await this.#store.setFlags(mailboxId, update);
    if (r.updated.length > 0) this.#changed(accountId, mailboxId);
    return r;
  }

  async copyMessages(
    accountId: number,
    mailboxId: number,
    uids: number[],
    destinationMailboxId: number,
  ): Promise<CopyResult> {
    const r = await this.#store.copyMessages(mailboxId, uids, destinationMailboxId);
    if (r.mapping.length > 0) this.#changed(accountId, destinationMailboxId);
    return r;
  }

  async moveMessages(
    accountId: number,
    mailboxId: number,
    uids: number[],
    destinationMailboxId: number,
  ): Promise<CopyResult> {
    const r = await this.#store.moveMessages(mailboxId, uids, destinationMailboxId);
    if (r.mapping.length > 0) {
      this.#changed(accountId, destinationMailboxId);
      this.#changed(accountId, mailboxId);
    }
    return r;
  }

  async expunge(accountId: number, mailboxId: number, uids?: number[]): Promise<number[]> {
    const r = await this.#store.expunge(mailboxId, uids);
    if (r.length > 0) this.#changed(accountId, mailboxId);
    return r;
  }

  async removeMessages(accountId: number, mailboxId: number, uids: number[]): Promise<number[]> {
    const r = await this.#store.removeMessages(mailboxId, uids);
    if (r.length > 0) this.#changed(accountId, mailboxId);
    return r;
  }

  async quota(accountId: number): Promise<{ usedBytes: number; limitBytes: number }> {
    const a = await this.#store.getAccountById(accountId);
    return {
      usedBytes: a ? a.usedBytes : 0,
      limitBytes: a?.quotaBytes ?? this.defaultQuotaBytes,
    };
  }
}
