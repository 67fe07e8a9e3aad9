// A fault-injecting TCP proxy for tests: a phone's network between clients and a server on
// loopback. Per direction: added latency, a bandwidth cap, stalls, and resets (RST on both sides)
// at random byte offsets — each connection draws its faults from a seeded generator, so a run's
// seed says what it did. The counters prove faults happened (a reset is only ever triggered by
// bytes passing, so each one cut a transfer).

import * as net from "node:net";
import { Prng } from "./prng.ts";

export interface DirectionFaults {
  /** Added delay per chunk, uniform in [min, max] ms (order is kept). */
  latencyMs?: [number, number];
  /** Bytes per second per connection; 0 or absent: no cap. */
  bytesPerSecond?: number;
  /** Chance per forwarded piece (≤ 16 KiB) of a stall, and its length in ms. */
  stallChance?: number;
  stallMs?: [number, number];
  /** Resets (RST on both sides) at byte offsets drawn per connection. */
  resets?: ResetRule[];
  /**
   * Chance per forwarded piece that only part of it goes out at first (a split drawn at random),
   * the rest after `splitMs` (uniform in [min, max]): a write the receiver sees in two reads.
   */
  splitChance?: number;
  splitMs?: [number, number];
}

export interface ResetRule {
  /** Chance per connection that the rule is armed for this direction. */
  chance: number;
  /** The offset within the direction's bytes, drawn in [min, max]. */
  atBytes: [number, number];
  /**
   * "log" (default): log-uniform, so every scale (a command, a small message, a big file) is hit
   * about as often; "uniform": uniform in the range.
   */
  spread?: "log" | "uniform";
  /** At most this many resets by this rule over the proxy's life (default: no limit). */
  budget?: number;
}

export interface Faults {
  /** Client to server. */
  up: DirectionFaults;
  /** Server to client. */
  down: DirectionFaults;
}

export interface ProxyStats {
  connections: number;
  bytesUp: number;
  bytesDown: number;
  stalls: number;
  /** Pieces delivered in two parts with a pause between. */
  splits: number;
  /** Resets by direction, with the byte offset of each within its connection's direction. */
  resets: { dir: "up" | "down"; atByte: number }[];
  /** Connections reset by dropAll(). */
  dropped: number;
}

const PIECE = 16 * 1024;
/** Bytes queued in one direction before the sending side is paused. */
const HIGH_WATER = 1 << 20;

export class FaultyProxy {
  readonly stats: ProxyStats = {
    connections: 0,
    bytesUp: 0,
    bytesDown: 0,
    stalls: 0,
    splits: 0,
    resets: [],
    dropped: 0,
  };
  faults: Faults;
  readonly port: number;
  #server: net.Server;
  #rng: Prng;
  #sockets = new Set<net.Socket>();
  /** Open connections, each as the function that resets it. */
  #pairs = new Set<() => void>();
  /** Resets made per rule (for budgets). */
  #used = new Map<ResetRule, number>();
  #timers = new Set<ReturnType<typeof setTimeout>>();

  private constructor(server: net.Server, port: number, rng: Prng, faults: Faults) {
    this.#server = server;
    this.port = port;
    this.#rng = rng;
    this.faults = faults;
  }

  /** Listens on 127.0.0.1 (ephemeral port) and forwards to `target`. */
  static async start(options: {
    target: { host?: string; port: number };
    seed: number;
    faults?: Faults;
  }): Promise<FaultyProxy> {
    let proxy: FaultyProxy | null = null;
    const server = net.createServer((client) => proxy?.accept(client, options.target));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    proxy = new FaultyProxy(server, port, new Prng(options.seed), options.faults ?? NO_FAULTS);
    return proxy;
  }

  /** Resets made while each connection's direction carried data (all of them, by design). */
  get resetCount(): number {
    return this.stats.resets.length;
  }

  accept(client: net.Socket, target: { host?: string; port: number }): void {
    const n = this.stats.connections++;
    const rng = this.#rng.fork(n);
    const faults = this.faults;
    const server = net.connect({ host: target.host ?? "127.0.0.1", port: target.port });
    client.setNoDelay(true);
    server.setNoDelay(true);
    for (const s of [client, server]) {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
      // Errors end the pair below; a reset peer is expected here.
      s.on("error", () => {});
    }
    let ended = false;
    const resetBoth = (dir: "up" | "down", atByte: number) => {
      if (ended) return;
      ended = true;
      this.stats.resets.push({ dir, atByte });
      this.#pairs.delete(drop);
      client.resetAndDestroy();
      server.resetAndDestroy();
    };
    const closeBoth = () => {
      ended = true;
      this.#pairs.delete(drop);
      client.destroy();
      server.destroy();
    };
    const drop = () => {
      ended = true;
      this.#pairs.delete(drop);
      client.resetAndDestroy();
      server.resetAndDestroy();
    };
    this.#pairs.add(drop);
    client.on("close", () => !ended && setTimeout(closeBoth, 0));
    server.on("close", () => !ended && setTimeout(closeBoth, 0));
    const links = { reset: resetBoth, close: closeBoth, ended: () => ended };
    this.#pipe(client, server, "up", faults.up, rng, links);
    this.#pipe(server, client, "down", faults.down, rng, links);
  }

  #pipe(
    from: net.Socket,
    to: net.Socket,
    dir: "up" | "down",
    f: DirectionFaults,
    rng: Prng,
    links: {
      reset: (dir: "up" | "down", atByte: number) => void;
      close: () => void;
      ended: () => boolean;
    },
  ) {
    const { reset, ended } = links;
    // Each armed rule's offset; the first one reached with budget left cuts.
    const armed = (f.resets ?? []).filter((r) => rng.chance(r.chance)).map((rule) => {
      const [lo, hi] = rule.atBytes;
      const at = rule.spread === "uniform" ? rng.int(lo, hi) : Math.round(
        Math.exp(Math.log(Math.max(1, lo)) + rng.next() * Math.log(hi / Math.max(1, lo))),
      );
      return { rule, at };
    }).sort((a, b) => a.at - b.at);
    const nextReset = (upTo: number) =>
      armed.find((a) =>
        a.at <= upTo && (this.#used.get(a.rule) ?? 0) < (a.rule.budget ?? Infinity)
      );
    const queue: { bytes: Uint8Array; at: number }[] = [];
    let queued = 0;
    let sent = 0;
    let finished = false;
    let wake: (() => void) | null = null;
    let bandwidthFreeAt = 0;
    let lastDue = 0;
    const sleep = (ms: number) =>
      ms <= 0 ? Promise.resolve() : new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          resolve();
        }, ms);
        this.#timers.add(t);
      });
    from.on("data", (c: Uint8Array) => {
      queue.push({ bytes: c, at: performance.now() });
      queued += c.length;
      if (queued > HIGH_WATER) from.pause();
      wake?.();
    });
    from.on("end", () => {
      finished = true;
      wake?.();
    });
    const pump = async () => {
      while (!ended()) {
        const item = queue.shift();
        if (!item) {
          if (finished) {
            to.end();
            return;
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = null;
          continue;
        }
        queued -= item.bytes.length;
        if (queued <= HIGH_WATER / 2 && from.isPaused()) from.resume();
        const latency = f.latencyMs ? rng.int(f.latencyMs[0], f.latencyMs[1]) : 0;
        // Never earlier than the chunk before it: latency must not reorder a stream.
        lastDue = Math.max(lastDue, item.at + latency);
        await sleep(lastDue - performance.now());
        for (let off = 0; off < item.bytes.length && !ended(); off += PIECE) {
          let piece = item.bytes.subarray(off, off + PIECE);
          if (f.stallChance && rng.chance(f.stallChance)) {
            this.stats.stalls++;
            await sleep(rng.int(f.stallMs?.[0] ?? 100, f.stallMs?.[1] ?? 1000));
          }
          if (f.bytesPerSecond) {
            // Each piece starts once the one before it had its time on the wire.
            const now = performance.now();
            const start = Math.max(bandwidthFreeAt, now);
            bandwidthFreeAt = start + piece.length / f.bytesPerSecond * 1000;
            await sleep(start - now);
          }
          if (ended()) return;
          const cut = nextReset(sent + piece.length);
          if (cut) {
            this.#used.set(cut.rule, (this.#used.get(cut.rule) ?? 0) + 1);
            piece = piece.subarray(0, Math.max(0, cut.at - sent));
          }
          if (!cut && piece.length > 1 && f.splitChance && rng.chance(f.splitChance)) {
            // Part of the write now, the rest after a pause.
            const at = rng.int(1, piece.length - 1);
            this.stats.splits++;
            to.write(piece.subarray(0, at));
            sent += at;
            if (dir === "up") this.stats.bytesUp += at;
            else this.stats.bytesDown += at;
            piece = piece.subarray(at);
            await sleep(rng.int(f.splitMs?.[0] ?? 10, f.splitMs?.[1] ?? 200));
            if (ended()) return;
          }
          sent += piece.length;
          if (dir === "up") this.stats.bytesUp += piece.length;
          else this.stats.bytesDown += piece.length;
          if (piece.length && !to.write(piece)) {
            await new Promise<void>((resolve) => {
              const go = () => {
                to.removeListener("drain", go);
                to.removeListener("close", go);
                resolve();
              };
              to.once("drain", go);
              to.once("close", go);
            });
          }
          if (cut) {
            // Let the partial piece leave before the RST discards it.
            await sleep(5);
            reset(dir, sent);
            return;
          }
        }
      }
    };
    pump().catch(() => links.close());
  }

  /** RST on every open connection (a network switch); counted apart from the drawn resets. */
  dropAll(): void {
    this.stats.dropped += this.#pairs.size;
    for (const drop of [...this.#pairs]) drop();
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export const NO_FAULTS: Faults = { up: {}, down: {} };
