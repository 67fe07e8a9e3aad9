// A small seeded pseudo-random generator (mulberry32) for tests that must reproduce: chaos cycles
// and fault injection print their seed, and the same seed replays the same choices. Not for
// anything secret.

export class Prng {
  #state: number;

  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A generator of its own for item `n` (a cycle, a connection): the same whatever order runs. */
  fork(n: number): Prng {
    return new Prng(Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(n + 1, 0xc2b2ae35));
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max] (both included). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** One key of `weights`, with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    let x = this.next() * entries.reduce((n, [, w]) => n + w, 0);
    for (const [k, w] of entries) {
      x -= w;
      if (x < 0) return k;
    }
    return entries[entries.length - 1][0];
  }
}

/** A seed from the environment variable `name` (decimal or 0x hex), or a fresh random one. */
export function seedFrom(name: string): number {
  const text = Deno.env.get(name);
  if (text) {
    const n = Number(text);
    if (!Number.isInteger(n)) throw new Error(`${name}=${text} is not an integer seed`);
    return n >>> 0;
  }
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
