// What the relay still has to write to one client, bounded in frames and bytes so a receiver that
// reads slowly cannot make the relay buffer without limit: past a bound new frames are refused
// (the caller drops and counts them, as iroh drops on a full per-client channel). Three lanes,
// written in priority order: control (pong, peer gone), disco (hole punching), data.

import type { OutFrame } from "./frames.ts";

export type Lane = "control" | "disco" | "data";

export interface LaneLimit {
  frames: number;
  bytes: number;
}

export interface SendQueueLimits {
  control: LaneLimit;
  disco: LaneLimit;
  data: LaneLimit;
}

/** iroh queues 512 packets per client and lane; the byte bounds keep 64 KiB packets in check. */
export const DEFAULT_QUEUE_LIMITS: SendQueueLimits = {
  control: { frames: 64, bytes: 16 * 1024 },
  disco: { frames: 512, bytes: 256 * 1024 },
  data: { frames: 512, bytes: 1024 * 1024 },
};

/** Bytes queued across all clients, so that many slow receivers together stay bounded too. */
export class ByteBudget {
  used = 0;
  constructor(readonly max: number) {}
}

class LaneQueue {
  frames: OutFrame[] = [];
  head = 0;
  bytes = 0;
  constructor(readonly limit: LaneLimit, readonly budget: ByteBudget) {}

  get length(): number {
    return this.frames.length - this.head;
  }

  push(f: OutFrame): boolean {
    if (this.length >= this.limit.frames || this.bytes + f.length > this.limit.bytes) return false;
    if (this.budget.used + f.length > this.budget.max) return false;
    this.frames.push(f);
    this.bytes += f.length;
    this.budget.used += f.length;
    return true;
  }

  shift(): OutFrame {
    const f = this.frames[this.head++];
    this.bytes -= f.length;
    this.budget.used -= f.length;
    if (this.head === this.frames.length) {
      this.frames = [];
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
    return f;
  }

  peek(): OutFrame {
    return this.frames[this.head];
  }
}

export interface Batch {
  frames: OutFrame[];
  /** Data and disco frames in the batch (packets relayed to this client). */
  packets: number;
  /** Their packet bytes, without the sender key. */
  packetBytes: number;
}

export class SendQueue {
  #lanes: Record<Lane, LaneQueue>;
  #order: LaneQueue[];
  #waiter: (() => void) | null = null;
  #closed = false;

  constructor(
    limits: SendQueueLimits = DEFAULT_QUEUE_LIMITS,
    budget = new ByteBudget(Number.MAX_SAFE_INTEGER),
  ) {
    this.#lanes = {
      control: new LaneQueue(limits.control, budget),
      disco: new LaneQueue(limits.disco, budget),
      data: new LaneQueue(limits.data, budget),
    };
    this.#order = [this.#lanes.control, this.#lanes.disco, this.#lanes.data];
  }

  get size(): number {
    return this.#order.reduce((n, l) => n + l.length, 0);
  }

  /** False when the lane is full or the queue closed: the frame is not queued. */
  push(frame: OutFrame, lane: Lane): boolean {
    if (this.#closed || !this.#lanes[lane].push(frame)) return false;
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
    return true;
  }

  /** Frames in priority order up to about maxBytes (at least one); empty when none are queued. */
  take(maxBytes: number): Batch {
    const batch: Batch = { frames: [], packets: 0, packetBytes: 0 };
    let bytes = 0;
    for (const lane of this.#order) {
      while (
        lane.length > 0 && (batch.frames.length === 0 || bytes + lane.peek().length <= maxBytes)
      ) {
        const f = lane.shift();
        batch.frames.push(f);
        bytes += f.length;
        if (lane !== this.#lanes.control) {
          batch.packets++;
          batch.packetBytes += f.length - f.parts[0].length;
        }
      }
    }
    return batch;
  }

  /** Resolves once something is queued or the queue is closed. */
  wait(): Promise<void> {
    if (this.size > 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  /** Drops what is still queued (a stopped client's backlog), giving its bytes back. */
  clear(): void {
    for (const lane of this.#order) while (lane.length > 0) lane.shift();
  }

  /** Refuses further frames and wakes the writer; what is queued stays readable. */
  close(): void {
    this.#closed = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  get closed(): boolean {
    return this.#closed;
  }
}
