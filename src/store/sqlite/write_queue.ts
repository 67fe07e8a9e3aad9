// Group commit on the main thread's side: at most IN_FLIGHT batches are with the writer at a
// time; writes made meanwhile wait and leave together as the next batch, so one COMMIT serves
// every write that was ready. Two in flight: the writer runs one batch while the disk syncs the
// one before (worker.ts), and one WAL sync covers both when they meet. Each write's promise
// settles with its own result once its COMMIT is on disk: a caller that answers "250" after it
// has durable mail.

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

/** Batches with the writer at once (the writer runs them in order). */
const IN_FLIGHT = 2;

interface Item {
  op: OpCall;
  alone: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export class WriteQueue {
  #runner: BatchRunner;
  #queue: Item[] = [];
  /** Batches with the runner; IN_FLIGHT while an operation runs alone. */
  #inFlight = 0;
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
    if (this.#inFlight === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  #pump(): void {
    if (this.#inFlight >= IN_FLIGHT) return;
    if (this.#queue.length === 0) {
      const idle = this.#inFlight === 0 ? this.#idle.splice(0) : [];
      for (const r of idle) r();
      return;
    }
    let run: Promise<void>;
    let took: number;
    if (this.#queue[0].alone) {
      // Alone means alone: it waits for the batches before it, and none goes while it runs.
      if (this.#inFlight > 0) return;
      const item = this.#queue.shift()!;
      took = IN_FLIGHT;
      run = this.#runner.runAlone(item.op).then(item.resolve, item.reject);
    } else {
      took = 1;
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
    this.#inFlight += took;
    run.finally(() => {
      this.#inFlight -= took;
      this.#pump();
    });
    // A second batch may go at once when writes are still waiting.
    if (this.#inFlight < IN_FLIGHT && this.#queue.length > 0) this.#pump();
  }
}
