// How many deliveries to one destination may run at once. Like TCP slow start and Postfix's
// destination concurrency scheduler: start small, one more after each success up to a cap, half
// after a failure to talk to the peer; a failure at one is a dead peer (Postfix: a failed cohort).

export class ConcurrencyWindow {
  #limit: number;

  constructor(readonly initial = 2, readonly cap = 20) {
    this.#limit = Math.max(1, Math.min(initial, cap));
  }

  /** Deliveries that may run at once now. */
  get limit(): number {
    return this.#limit;
  }

  success(): void {
    this.#limit = Math.min(this.cap, this.#limit + 1);
  }

  /** After a transport failure; "dead" when the window was already down to one. */
  failure(): "shrunk" | "dead" {
    if (this.#limit <= 1) return "dead";
    this.#limit = Math.max(1, Math.floor(this.#limit / 2));
    return "shrunk";
  }

  /** Back to one delivery at a time (a peer that answers again is probed gently). */
  restart(): void {
    this.#limit = 1;
  }
}
