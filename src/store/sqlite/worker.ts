// The store thread's side (a Web Worker started from the program's entry, see main.ts): opens its
// connection (the writer migrates the schema first), then runs what the main thread sends:
// batches (writer: one transaction each), single calls (reader; writer for steps that must run
// outside a transaction), and close.
//
// The writer's commits do not wait for the disk (Engine deferSync); its answers do. Answers wait
// in `unsynced` for one fdatasync of the WAL that covers them all, which runs on a blocking-pool
// thread while this thread goes on with the next batch: the disk's sync and the next batch's
// work overlap, and one sync serves every batch committed before it began. Nothing is answered
// before the sync that makes it durable, so "250 after the commit is on disk" still holds.

import { Engine, type OpCall } from "./engine.ts";
import { type Migration, MIGRATIONS } from "./migrations.ts";
import { toWire } from "./wire_error.ts";
import { idleCollector } from "./idle_collector.ts";

/** A store thread idle this long after work runs one memory-reducing collection. */
const IDLE_COLLECT_MS = 2_000;

export type ToThread =
  | {
    t: "open";
    id: number;
    path: string;
    bodiesDir: string | null;
    readOnly: boolean;
    migrations?: readonly Migration[];
    reserveBytes?: number;
    now: number;
    /** The writer: its WAL's size (bytes) before it checkpoints itself (checkpointer.ts). */
    walAutocheckpointBytes?: number;
    /** A connection that only checkpoints: no migrations, no body files, nothing to sync. */
    checkpoint?: boolean;
  }
  | { t: "batch"; id: number; ops: OpCall[] }
  | { t: "call"; id: number; op: OpCall }
  | { t: "close"; id: number };

export type FromThread =
  | { t: "ok"; id: number; value?: unknown }
  | { t: "error"; id: number; error: ReturnType<typeof toWire> };

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToThread>) => void) | null;
  postMessage(message: FromThread, transfer?: Transferable[]): void;
  close(): void;
}

/** Serves requests; `early` holds those that arrived before this module was loaded. */
export function runStoreThread(early: MessageEvent[] = []): void {
  const scope = self as unknown as WorkerScope;
  let engine: Engine | null = null;
  const post = (m: FromThread, transfer: Transferable[] = []) => scope.postMessage(m, transfer);
  /** Answers waiting for the WAL sync that covers them (deferSync only). */
  let unsynced: { m: FromThread; transfer: Transferable[] }[] = [];
  /** The sync round under way, if any. */
  let syncing: Promise<void> | null = null;
  const syncRounds = async () => {
    while (unsynced.length) {
      const round = unsynced;
      unsynced = [];
      let failure: unknown = null;
      try {
        await engine?.syncWal();
      } catch (err) {
        failure = err;
      }
      // A failed sync fails what it covered: nothing of it may be reported as stored.
      for (const { m, transfer } of round) {
        if (failure && m.t === "ok") post({ t: "error", id: m.id, error: toWire(failure) });
        else post(m, transfer);
      }
    }
    syncing = null;
  };
  const reply = (m: FromThread, transfer: Transferable[] = []) => {
    if (!engine?.deferSync) return post(m, transfer);
    unsynced.push({ m, transfer });
    syncing ??= syncRounds();
  };
  const collector = idleCollector(IDLE_COLLECT_MS);
  scope.onmessage = (e) => {
    const m = e.data;
    collector.touch();
    try {
      switch (m.t) {
        case "open": {
          const writer = !m.readOnly && !m.checkpoint;
          engine = new Engine(
            m.path,
            {
              bodiesDir: m.checkpoint ? null : m.bodiesDir,
              readOnly: m.readOnly,
              reserveBytes: m.reserveBytes,
              deferSync: !m.checkpoint,
              walAutocheckpointBytes: writer ? m.walAutocheckpointBytes : undefined,
            },
            writer ? (db) => db.migrate(m.migrations ?? MIGRATIONS, m.now) : undefined,
          );
          return reply({ t: "ok", id: m.id });
        }
        case "batch":
          return reply({ t: "ok", id: m.id, value: engine!.runBatch(m.ops) });
        case "call": {
          const value = engine!.call(m.op);
          // A body read whole moves to the main thread without a copy.
          const transfer = value instanceof Uint8Array && value.byteOffset === 0 &&
              value.byteLength === value.buffer.byteLength
            ? [value.buffer as ArrayBuffer]
            : [];
          return reply({ t: "ok", id: m.id, value }, transfer);
        }
        case "close":
          // The answers still waiting for their sync go out first (closing checkpoints anyway).
          collector.stop();
          return void (syncing ?? Promise.resolve()).then(() => {
            engine?.close();
            engine = null;
            post({ t: "ok", id: m.id });
            scope.close();
          });
      }
    } catch (err) {
      reply({ t: "error", id: m.id, error: toWire(err) });
    }
  };
  for (const e of early) scope.onmessage(e as MessageEvent<ToThread>);
}
