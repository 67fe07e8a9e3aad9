import assert from "node:assert/strict";
import { BUSY_MS, loopTurn } from "./loop_turn.ts";

/** Holds the thread for `ms` (a piece of work). */
function busy(ms: number) {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* work */ }
}

Deno.test("loopTurn: many busy jobs share one budget per turn; a timer set meanwhile gets in soon", async () => {
  const JOBS = 20, PIECES = 30, PIECE_MS = 0.5;
  let pieces = 0;
  const done: number[] = [];
  const jobs = Array.from({ length: JOBS }, async (_, j) => {
    for (let i = 0; i < PIECES; i++) {
      busy(PIECE_MS);
      pieces++;
      await loopTurn();
    }
    done.push(j);
  });
  // Once every job waits for a turn: a timer (standing in for I/O) asks for the loop.
  await new Promise((r) => setTimeout(r, 0));
  const before = pieces;
  const after = await new Promise<number>((r) => setTimeout(() => r(pieces), 0));
  await Promise.all(jobs);
  // A turn is one budget of BUSY_MS plus one piece of each other waiting job, not a budget for
  // each of the 20 jobs (that let about 20 × 10 pieces run before the timer).
  const perTurn = Math.ceil(BUSY_MS / PIECE_MS) + JOBS;
  assert.ok(after - before <= 2 * perTurn, `${after - before} pieces ran before the timer`);
  assert.equal(done.length, JOBS, "every job finished");
});
