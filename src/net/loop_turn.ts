// Long work on the one event loop, cut into pieces that let other connections in. Measured on
// Deno 2.9.6: awaiting setImmediate (or a MessageChannel message) between pieces never lets I/O
// run while immediates keep coming (with 50 streams doing 1 ms pieces an echo took 8-17 s); a
// timer does, but timers chained from timers are clamped to a few ms. So the work yields to a
// timer only once it has held the loop for BUSY_MS: a lone large job loses only a few ms per
// yield.
//
// The budget is per turn of the loop, not per job: jobs that wait queue up, and each turn's one
// timer resumes the first of them. (With a timer per job, every timer due fires in the same
// timers phase, each giving its job a fresh BUSY_MS: 50 APPENDs and 50 FETCHes held the loop
// 100 × 5 ms between two looks at the sockets, and another user's NOOP waited 1.4 s at p99.)
// The next turn's timer is set when a turn starts, so its clamp has passed by the time the
// resumed job used its budget.

/** How long pieces of work may follow one another before the loop is given a turn. */
export const BUSY_MS = 5;

/** When the loop last had a turn (process-wide: every cooperating job shares the budget). */
let lastTurn = performance.now();
/** Jobs waiting for a turn, first come first served (a job waits at one place at a time). */
const waiting: (() => void)[] = [];
let armed = false;

/** Resolves at once while the loop was given a turn less than BUSY_MS ago; else after one. */
export function loopTurn(): Promise<void> {
  if (performance.now() - lastTurn < BUSY_MS) return Promise.resolve();
  return new Promise((resolve) => {
    waiting.push(resolve);
    arm();
  });
}

function arm() {
  if (armed) return;
  armed = true;
  setTimeout(turn, 0);
}

/** A turn: the loop has looked at its I/O since the last one; the first waiting job goes on. */
function turn() {
  armed = false;
  lastTurn = performance.now();
  const next = waiting.shift();
  if (waiting.length > 0) arm();
  next?.();
}
