// Disconnect chaos against a running relay: cycles of the sessions in chaos_scenarios.ts, each cut
// at a point its seeded generator picks (the same seed replays the same cuts), many at once from
// many loopback addresses. A cycle fails when the relay answers wrongly, closes a session by
// itself or stops answering; a cut on purpose is the normal end.

import { CutError, type CutStyle } from "./cut_conn.ts";
import { Prng } from "./prng.ts";
import { type ChaosTarget, Cx, type Ledger, SCENARIOS } from "./chaos_scenarios.ts";

export interface ChaosOptions {
  seed: number;
  cycles: number;
  /** Cycles in flight at once. */
  concurrency: number;
  /** Cycle numbers start here (a warm-up and the main run use disjoint numbers). */
  firstCycle?: number;
  /** A cycle taking longer than this is stuck (a failure); default 120 s. */
  cycleTimeoutMs?: number;
  /** Called after each cycle with the number done. */
  progress?: (done: number) => void;
}

export interface ChaosResult {
  cycles: number;
  ms: number;
  failures: string[];
  /** Scenario name → cycles run, cut on purpose, completed. */
  byScenario: Map<string, { runs: number; cut: number; completed: number }>;
  byStyle: Record<CutStyle, number>;
}

const STYLES: Record<CutStyle, number> = { fin: 1, close: 1, rst: 2 };
const MAX_REPORTED = 20;

export async function runChaos(
  target: ChaosTarget,
  ledger: Ledger,
  options: ChaosOptions,
): Promise<ChaosResult> {
  const root = new Prng(options.seed);
  const first = options.firstCycle ?? 0;
  const weights = Object.fromEntries(SCENARIOS.map((s, i) => [String(i), s.weight]));
  const result: ChaosResult = {
    cycles: 0,
    ms: 0,
    failures: [],
    byScenario: new Map(SCENARIOS.map((s) => [s.scenario.name, { runs: 0, cut: 0, completed: 0 }])),
    byStyle: { fin: 0, close: 0, rst: 0 },
  };
  let failed = 0;
  const t0 = performance.now();
  let next = first;
  const worker = async () => {
    while (next < first + options.cycles) {
      const index = next++;
      const rng = root.fork(index);
      const { scenario } = SCENARIOS[Number(rng.weighted(weights))];
      const point = rng.pick(scenario.points);
      const style = rng.weighted(STYLES);
      const localAddress = `127.0.${rng.int(1, 254)}.${rng.int(1, 254)}`;
      const cx = new Cx({ index, rng, style, target, ledger, localAddress }, point);
      const stats = result.byScenario.get(scenario.name)!;
      stats.runs++;
      result.byStyle[style]++;
      const what =
        `cycle ${index} [${scenario.name}, cut at ${point}, ${style}, from ${localAddress}]`;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          scenario.run(cx),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error("stuck: the cycle did not end")),
              options.cycleTimeoutMs ?? 120_000,
            );
          }),
        ]);
        stats.completed++;
      } catch (err) {
        if (err instanceof CutError) stats.cut++;
        else {
          failed++;
          if (result.failures.length < MAX_REPORTED) {
            const notes = cx.notes.length ? ` (${cx.notes.join(", ")})` : "";
            result.failures.push(`${what}${notes}: ${(err as Error).message}`);
          }
        }
      } finally {
        clearTimeout(timer);
        for (const c of cx.conns) c.close();
      }
      result.cycles++;
      options.progress?.(result.cycles);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  result.ms = performance.now() - t0;
  if (failed > result.failures.length) {
    result.failures.push(`… and ${failed - result.failures.length} more failed cycles`);
  }
  return result;
}
