// A full disk must not stop users from deleting mail, yet with SQLite even a DELETE needs room
// (write-ahead log frames, a checkpoint). So a reserve file is kept in the data directory: when
// a space-freeing write (flags, expunge, retention, account deletion) hits a full disk, the
// reserve is released and the write retried. From then on, writes that add data (deliveries,
// APPEND, the outbound queue, new accounts) are refused at once, with the usual storage-full
// replies, until the disk has room for the reserve twice over; then it is taken again.

import { statfsSync } from "node:fs";
import { isStorageFull } from "../errors.ts";
import type { Logger } from "../log/mod.ts";
import type { Store } from "../store/types.ts";

type State = "held" | "released" | "absent";

export class SpaceReserve {
  #path: string;
  #bytes: number;
  #log?: Logger;
  #state: State = "absent";

  constructor(path: string, bytes: number, log?: Logger) {
    this.#path = path;
    this.#bytes = bytes;
    this.#log = log;
  }

  /** Takes the reserve (when the disk has room for it). */
  async init(): Promise<void> {
    if (this.#bytes <= 0) return;
    if (await this.#take()) return;
    this.#log?.system(
      `data directory: no room for the ${this.#bytes}-byte reserve; deleting mail on a full disk may fail`,
    );
  }

  get state(): State {
    return this.#state;
  }

  /** Frees the reserve for a space-freeing write; false when there is none to free. */
  release(): boolean {
    if (this.#state !== "held") return false;
    try {
      Deno.removeSync(this.#path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    this.#state = "released";
    this.#log?.system(
      "disk full: storage reserve released; new mail is refused until space returns",
    );
    return true;
  }

  /** After a release: takes the reserve again once the disk has room for it twice over. */
  async restore(): Promise<boolean> {
    if (this.#state !== "released") return true;
    const dir = this.#path.slice(0, this.#path.lastIndexOf("/")) || ".";
    const s = statfsSync(dir);
    if (s.bavail * s.bsize < 2 * this.#bytes) return false;
    if (!(await this.#take())) return false;
    this.#log?.system("disk space returned: storage reserve taken again, mail accepted");
    return true;
  }

  async #take(): Promise<boolean> {
    try {
      const size = (await Deno.stat(this.#path).catch(() => null))?.size ?? 0;
      if (size < this.#bytes) {
        // Zeros written, not a sparse file: the blocks must really be allocated.
        await Deno.writeFile(this.#path, new Uint8Array(this.#bytes), { mode: 0o600 });
      }
      this.#state = "held";
      return true;
    } catch (err) {
      await Deno.remove(this.#path).catch(() => {});
      if (isStorageFull(err)) return false;
      throw err;
    }
  }
}

/** Writes that free space or must work while reading a full disk (login, SELECT, STORE). */
const FREEING = [
  "setFlags",
  "expunge",
  "removeMessages",
  "moveMessages",
  "claimRecent",
  "recordLogin",
  "deleteAccount",
  "deleteMailbox",
  "freeUnreferencedBodies",
  "deleteQueueEntry",
  "updateRecipient",
  "deletePushJob",
  "removePushToken",
  "removePushTokens",
  "expirePushTokens",
] as const;

/** Writes that add data: refused at once while the reserve is released. */
const ADDING = ["deliver", "append", "copyMessages", "enqueue", "createAccount"] as const;

type Method = (...args: unknown[]) => Promise<unknown>;

/** The store with the reserve's rules around its writes (everything else as it is). */
export function reserveGuardedStore<S extends Store>(store: S, reserve: SpaceReserve): S {
  const guarded: Record<string, unknown> = {};
  for (let p: object = store; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (name === "constructor" || name in guarded) continue;
      const v = (store as unknown as Record<string, unknown>)[name];
      if (typeof v === "function") guarded[name] = v.bind(store);
      else {
        Object.defineProperty(guarded, name, {
          get: () => (store as unknown as Record<string, unknown>)[name],
          enumerable: true,
        });
      }
    }
  }
  const original = (name: string) => guarded[name] as Method;
  for (const name of FREEING) {
    const call = original(name);
    guarded[name] = async (...args: unknown[]) => {
      try {
        return await call(...args);
      } catch (err) {
        if (!isStorageFull(err) || !reserve.release()) throw err;
        return await call(...args);
      }
    };
  }
  for (const name of ADDING) {
    const call = original(name);
    guarded[name] = async (...args: unknown[]) => {
      if (!(await reserve.restore())) {
        throw new Error("database or disk is full: the storage reserve is in use");
      }
      return await call(...args);
    };
  }
  return guarded as unknown as S;
}
