// Event counts over recent time: a per-second ring for "in the last 60 s" and a per-minute ring
// for a short history (dashboard chart). Memory is fixed, whatever the traffic.

export interface MinutePoint {
  /** Start of the minute, Unix ms. */
  minute: number;
  count: number;
}

class Ring {
  #slots: Float64Array;
  #stamps: Float64Array;

  constructor(readonly size: number) {
    this.#slots = new Float64Array(size);
    this.#stamps = new Float64Array(size).fill(-1);
  }

  add(index: number, n: number) {
    const i = index % this.size;
    if (this.#stamps[i] !== index) {
      this.#stamps[i] = index;
      this.#slots[i] = 0;
    }
    this.#slots[i] += n;
  }

  get(index: number): number {
    const i = index % this.size;
    return this.#stamps[i] === index ? this.#slots[i] : 0;
  }
}

export class MinuteSeries {
  #now: () => number;
  #seconds = new Ring(60);
  #minutes: Ring;

  constructor(options: { now?: () => number; historyMinutes?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#minutes = new Ring(options.historyMinutes ?? 60);
  }

  add(n = 1): void {
    const t = this.#now();
    this.#seconds.add(Math.floor(t / 1000), n);
    this.#minutes.add(Math.floor(t / 60_000), n);
  }

  /** Events in the 60 seconds up to now. */
  lastMinute(): number {
    const s = Math.floor(this.#now() / 1000);
    let sum = 0;
    for (let i = 0; i < 60; i++) sum += this.#seconds.get(s - i);
    return sum;
  }

  /** Counts per calendar minute, oldest first, ending with the current (partial) minute. */
  history(minutes = 30): MinutePoint[] {
    const n = Math.min(minutes, this.#minutes.size);
    const current = Math.floor(this.#now() / 60_000);
    const out: MinutePoint[] = [];
    for (let m = current - n + 1; m <= current; m++) {
      out.push({ minute: m * 60_000, count: this.#minutes.get(m) });
    }
    return out;
  }
}
