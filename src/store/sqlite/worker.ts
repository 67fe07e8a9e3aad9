// The store thread's side (a Web Worker started from the program's entry, see main.ts): opens its
// connection (the writer migrates the schema first), then runs what the main thread sends:
// batches (writer: one transaction each), single calls (reader; writer for steps that must run
// outside a transaction), and close.

import { Engine, type OpCall } from "./engine.ts";
import { type Migration, MIGRATIONS } from "./migrations.ts";
import { toWire } from "./wire_error.ts";

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
  const reply = (m: FromThread, transfer: Transferable[] = []) => scope.postMessage(m, transfer);
  scope.onmessage = (e) => {
    const m = e.data;
    try {
      switch (m.t) {
        case "open":
          engine = new Engine(
            m.path,
            { bodiesDir: m.bodiesDir, readOnly: m.readOnly, reserveBytes: m.reserveBytes },
            m.readOnly ? undefined : (db) => db.migrate(m.migrations ?? MIGRATIONS, m.now),
          );
          return reply({ t: "ok", id: m.id });
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
          engine?.close();
          engine = null;
          reply({ t: "ok", id: m.id });
          return scope.close();
      }
    } catch (err) {
      reply({ t: "error", id: m.id, error: toWire(err) });
    }
  };
  for (const e of early) scope.onmessage(e as MessageEvent<ToThread>);
}
