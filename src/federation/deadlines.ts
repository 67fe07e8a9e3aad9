// Deadlines of outbound network steps. Each step (TCP connect, TLS handshake, one SMTP reply or
// HTTP response head, a body transfer) has its own limit, and every step of one delivery attempt
// also ends when the attempt's whole budget is spent. These are absolute deadlines, not idle
// timers: a peer that drips one byte at a time cannot stretch a step.

export interface Deadlines {
  /** TCP connect. */
  connectMs: number;
  /** TLS handshake (implicit TLS or after STARTTLS). */
  tlsMs: number;
  /** Each SMTP reply, and the head of an HTTP response. */
  commandMs: number;
  /** One message to one destination: every host and both transports together. */
  attemptMs: number;
}

/** The reference relay waits 60 s per step (chatmail-relay.md §5.5); connects fail sooner. */
export const DEFAULT_DEADLINES: Deadlines = {
  connectMs: 15_000,
  tlsMs: 15_000,
  commandMs: 60_000,
  attemptMs: 120_000,
};

/** Sending a body may take longer than a command: at least 64 KiB/s after commandMs. */
export function transferMs(d: Deadlines, bytes: number): number {
  return d.commandMs + Math.ceil(bytes / 64);
}

/** The end of one attempt; each step takes the smaller of its own limit and what is left. */
export class AttemptBudget {
  readonly #end: number;
  constructor(
    readonly deadlines: Deadlines,
    /** Aborts every step at once (the relay is stopping). */
    readonly signal?: AbortSignal,
    readonly now: () => number = () => performance.now(),
  ) {
    this.#end = now() + deadlines.attemptMs;
  }

  remaining(): number {
    return Math.max(0, this.#end - this.now());
  }

  /** The time a step may take: its own limit, cut to the attempt's rest. */
  step(limitMs: number): { ms: number; cut: boolean } {
    const left = this.remaining();
    return limitMs < left ? { ms: limitMs, cut: false } : { ms: left, cut: true };
  }
}
