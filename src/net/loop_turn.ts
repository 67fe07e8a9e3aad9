// Long work on the one event loop, cut into pieces that let other connections in. Measured on
// Deno 2.9.6: awaiting setImmediate (or a MessageChannel message) between pieces never lets I/O
// run while immediates keep coming (with 50 streams doing 1 ms pieces an echo took 8-17 s); a
// timer does, but timers chained from timers are clamped to a few ms. So the work yields to a
// timer only once it has held the loop for BUSY_MS: a lone large job loses only a few ms per
// yield.
//
// The budget is per turn of the loop, not per job: jobs that wait queue up, and one timer per
// turn resumes them all with one budget between them. (With a timer per job, every timer due
// fires in the same timers phase, each giving its job a fresh BUSY_MS: 50 APPENDs and 50
// FETCHes held the loop 100 × 5 ms between two looks at the sockets, and another user's NOOP
// waited 1.4-3.5 s at p99.) A turn now lasts BUSY_MS plus one piece per other waiting job.

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

/**
 * A turn: the loop has looked at its I/O since the last one. Every waiting job goes on, sharing
 * one fresh budget: each does at least its next piece, and those that find the budget spent wait
 * for the next turn. (Resuming one job per turn instead starved throughput: the turns' timers
 * are clamped to ~4 ms, and 8 submission sessions got 206 messages/s instead of ~500.)
 */
function turn() {
  armed = false;
  lastTurn = performance.now();
  for (const resume of waiting.splice(0)) resume();
}
