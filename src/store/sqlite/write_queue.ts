// Group commit on the main thread's side: at most one batch is with the writer at a time; writes
// made meanwhile wait and leave together as the next batch, so one COMMIT (one fsync) serves
// every write that was ready. Each write's promise settles with its own result after that
// COMMIT: a caller that answers "250" after it has durable mail.

import type { BatchOutcome, OpCall } from "./engine.ts";
import { fromWire } from "./wire_error.ts";

/** Where batches run: the writer thread, or the same thread (in-process stores). */
export interface BatchRunner {
  runBatch(ops: OpCall[]): Promise<BatchOutcome>;
  /** One operation outside any transaction (VACUUM and the like), in order with batches. */
  runAlone(op: OpCall): Promise<unknown>;
}

/** Bounds one batch's work (and so the wait of the writes behind it). */
const MAX_BATCH = 256;

interface Item {
  op: OpCall;
  alone: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export class WriteQueue {
  #runner: BatchRunner;
  #queue: Item[] = [];
  #busy = false;
  #scheduled = false;
  #idle: (() => void)[] = [];
  /** Batches sent and operations they carried (the benchmark reports ops per commit). */
  readonly stats = { batches: 0, ops: 0 };
  /** The writer's low-space mode as of the last batch (spools then refuse to use the disk). */
  lowSpace = false;

  constructor(runner: BatchRunner) {
    this.#runner = runner;
  }

  write(op: OpCall): Promise<unknown> {
    return this.#add(op, false);
  }

  alone(op: OpCall): Promise<unknown> {
    return this.#add(op, true);
  }

  #add(op: OpCall, alone: boolean): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ op, alone, resolve, reject });
      // Writes made in the same turn of the event loop go in the same batch.
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => {
          this.#scheduled = false;
          this.#pump();
        });
      }
    });
  }

  /** Resolves once every write made so far has settled. */
  drained(): Promise<void> {
    if (!this.#busy && this.#queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  #pump(): void {
    if (this.#busy) return;
    if (this.#queue.length === 0) {
      for (const r of this.#idle.splice(0)) r();
      return;
    }
    this.#busy = true;
    let run: Promise<void>;
    if (this.#queue[0].alone) {
      const item = this.#queue.shift()!;
      run = this.#runner.runAlone(item.op).then(item.resolve, item.reject);
    } else {
      let n = 0;
      while (n < this.#queue.length && n < MAX_BATCH && !this.#queue[n].alone) n++;
      const items = this.#queue.splice(0, n);
      this.stats.batches++;
      this.stats.ops += items.length;
      run = this.#runner.runBatch(items.map((i) => i.op)).then(
        ({ results, lowSpace }) => {
          this.lowSpace = lowSpace;
          results.forEach((r, i) => {
            if (r.ok) items[i].resolve(r.value);
            else items[i].reject(fromWire(r.error));
          });
        },
        (err) => items.forEach((i) => i.reject(err)),
      );
    }
    run.finally(() => {
      this.#busy = false;
      this.#pump();
    });
  }
}
