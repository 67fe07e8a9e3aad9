// Many deadlines of the same delay on one timer: the idle limit of every connection, IDLE's
// "Still here" of every session. A timer of its own costs an idle connection some 400 bytes of
// heap (the Timeout, its closures and list links); an entry here is one map slot.
//
// All entries of a queue have the same delay, so the order they were (re)scheduled in is the
// order of their deadlines: the one timer waits for the first, and firing walks from the front.

const queues = new Map<number, DelayQueue>();

/** The shared queue for `ms` (made at first use, kept: a handful of distinct delays exist). */
export function delayQueue(ms: number): DelayQueue {
  let q = queues.get(ms);
  if (!q) queues.set(ms, q = new DelayQueue(ms));
  return q;
}

export class DelayQueue {
  readonly ms: number;
  /** Callback → its deadline (performance.now()), in the order of the deadlines. */
  #due = new Map<() => void, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #firing = false;

  constructor(ms: number) {
    this.ms = ms;
  }

  /** Calls `fn` once, `ms` from now; a callback already waiting starts over. */
  schedule(fn: () => void): void {
    this.#due.delete(fn);
    this.#due.set(fn, performance.now() + this.ms);
    if (this.#timer === undefined && !this.#firing) this.#arm(this.ms);
  }

  /** `fn` will not be called (unless scheduled again). */
  cancel(fn: () => void): void {
    if (!this.#due.delete(fn) || this.#due.size > 0 || this.#firing) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Callbacks waiting (tests). */
  get size(): number {
    return this.#due.size;
  }

  #arm(ms: number) {
    this.#timer = setTimeout(this.#fire, Math.max(0, ms));
  }

  #fire = () => {
    this.#timer = undefined;
    this.#firing = true;
    try {
      const now = performance.now();
      // A callback may schedule or cancel others, or itself (it then goes to the end, with a
      // deadline still to come): a Map may be changed while it is walked.
      for (const [fn, at] of this.#due) {
        if (at > now) break;
        this.#due.delete(fn);
        fn();
      }
    } finally {
      this.#firing = false;
      // Whatever happened (even a callback that threw), the timer waits for the first left.
      clearTimeout(this.#timer);
      this.#timer = undefined;
      const first = this.#due.values().next();
      if (!first.done) this.#arm(first.value - performance.now());
    }
  };
}
