// Mailbox operations for IMAP (and admin): the store's operations plus the bus events that wake
// every other session of the account after each committed change.

import type { EventBus, RelayEventHandler } from "../events/mod.ts";
import type {
  BodyReader,
  CopyResult,
  FlagUpdate,
  FlagUpdateResult,
  MailboxChanges,
  MailboxQueries,
  MailboxRecord,
  MessageRecord,
  SmallBody,
  Store,
} from "../store/types.ts";
import { encodeStructure, MimeStreamParser } from "../mime/mod.ts";
import { MessageIntake } from "../delivery/message_intake.ts";

/** A message being received for APPEND (see MailboxService.startAppend). */
export class MessageUpload {
  constructor(readonly intake: MessageIntake, readonly parser: MimeStreamParser) {}

  /** The next bytes; resolves when more may come. Never rejects. */
  write(chunk: Uint8Array): Promise<void> {
    return this.intake.write(chunk);
  }

  /** Frees the spool (idempotent). */
  discard(): Promise<void> {
    return this.intake.discard();
  }
}

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

  /**
   * Starts receiving a message for APPEND: spooled as it arrives (bounded memory) and read once
   * by the MIME reader, whose structure is stored with it.
   */
  startAppend(): MessageUpload {
    const parser = new MimeStreamParser();
    return new MessageUpload(new MessageIntake(this.#store.createSpool(), [parser]), parser);
  }

  /**
   * Stores a message received with startAppend() (the upload is freed whatever happens), or
   * one held in memory (`data`: admin tools, tests).
   */
  async append(
    input:
      & {
        accountId: number;
        mailboxName: string;
        flags: string[];
        internalDate?: number;
      }
      & ({ upload: MessageUpload | { write(chunk: Uint8Array): Promise<void> } } | {
        data: Uint8Array;
      }),
  ): Promise<{ mailboxId: number; uidValidity: number; uid: number; modSeq: number }> {
    const { accountId, mailboxName, flags } = input;
    let upload = "upload" in input ? input.upload : null;
    if (!upload) {
      const data = (input as { data: Uint8Array }).data;
      const u = upload = this.startAppend();
      for (let i = 0; i < data.length; i += 1 << 20) await u.write(data.subarray(i, i + (1 << 20)));
    }
    if (!(upload instanceof MessageUpload)) {
      throw new Error("append() takes an upload made by this service's startAppend()");
    }
    try {
      const structure = encodeStructure(upload.parser.end());
      const r = await this.#store.append({
        accountId,
        mailboxName,
        flags,
        body: await upload.intake.finish(),
        structure,
        internalDate: input.internalDate ?? this.#now(),
        defaultQuotaBytes: this.defaultQuotaBytes,
      });
      this.#changed(accountId, r.mailboxId);
      return r;
    } finally {
      await upload.discard();
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

  openBody(bodyId: number): Promise<BodyReader | null> {
    return this.#store.openBody(bodyId);
  }

  readSmallBodies(bodyIds: number[]): Promise<Map<number, SmallBody>> {
    return this.#store.readSmallBodies(bodyIds);
  }

  setBodyStructure(bodyId: number, structure: Uint8Array): Promise<void> {
    return this.#store.setBodyStructure(bodyId, structure);
  }

  claimRecent(mailboxId: number): Promise<[number, number] | null> {
    return this.#store.claimRecent(mailboxId);
  }

  // Bounded reads for sessions on big mailboxes (MailboxQueries): straight from the store.
  mailboxState: MailboxQueries["mailboxState"] = (mailboxId) => this.#store.mailboxState(mailboxId);
  listUids: MailboxQueries["listUids"] = (mailboxId, q) => this.#store.listUids(mailboxId, q);
  firstUnseenUid: MailboxQueries["firstUnseenUid"] = (mailboxId, belowUid) =>
    this.#store.firstUnseenUid(mailboxId, belowUid);
  listKeywords: MailboxQueries["listKeywords"] = (mailboxId) => this.#store.listKeywords(mailboxId);
  scanMessages: MailboxQueries["scanMessages"] = (mailboxId, q) =>
    this.#store.scanMessages(mailboxId, q);
  changedMessages: MailboxQueries["changedMessages"] = (mailboxId, q) =>
    this.#store.changedMessages(mailboxId, q);
  expungedMessages: MailboxQueries["expungedMessages"] = (mailboxId, q) =>
    this.#store.expungedMessages(mailboxId, q);
  expungedInRange: MailboxQueries["expungedInRange"] = (mailboxId, from, to, limit) =>
    this.#store.expungedInRange(mailboxId, from, to, limit);

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
