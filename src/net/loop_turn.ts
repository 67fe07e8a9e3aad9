// Long work on the one event loop, cut into pieces that let other connections in. Measured on
// Deno 2.9.6: awaiting setImmediate (or a MessageChannel message) between pieces never lets I/O
// run while immediates keep coming (with 50 streams doing 1 ms pieces an echo took 8-17 s); a
// timer does (the same echo: about 0.3 s), but timers chained from timers are clamped to a few
// ms. So the work yields to a timer only once it has held the loop for BUSY_MS: other work
// waits at most that long plus one piece, and a lone large job loses only a few ms per yield.

/** How long pieces of work may follow one another before the loop is given a turn. */
export const BUSY_MS = 5;

/** When the loop last had a turn (process-wide: every cooperating job shares the budget). */
let lastTurn = performance.now();

/** Resolves at once while the loop was given a turn less than BUSY_MS ago; else after one. */
export function loopTurn(): Promise<void> {
  if (performance.now() - lastTurn < BUSY_MS) return Promise.resolve();
  return new Promise((resolve) =>
    setTimeout(() => {
      lastTurn = performance.now();
      resolve();
    }, 0)
  );
}
