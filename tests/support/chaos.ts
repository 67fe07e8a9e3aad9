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
  /** Only the scenarios whose names contain one of these (to chase one defect). */
  only?: string[];
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
  /** Client address → the cycles that used it (to name what a leftover socket belonged to). */
  byAddress: Map<string, string[]>;
}

const STYLES: Record<CutStyle, number> = { fin: 1, close: 1, rst: 2 };
const MAX_REPORTED = 20;

/** Scenario weights, limited to names containing one of `only` (CHAOS_ONLY) when given. */
function weights(only?: string[]): Record<string, number> {
  const w = Object.fromEntries(
    SCENARIOS.map((s, i) => [
      String(i),
      !only?.length || only.some((o) => s.scenario.name.includes(o)) ? s.weight : 0,
    ]),
  );
  if (Object.values(w).every((x) => x === 0)) throw new Error(`no chaos scenario matches ${only}`);
  return w;
}

/** What cycle `index` of a run seeded with `root` does (the same on every replay). */
export function planCycle(root: Prng, index: number, only?: string[]) {
  const rng = root.fork(index);
  const { scenario } = SCENARIOS[Number(rng.weighted(weights(only)))];
  const point = rng.pick(scenario.points);
  const style = rng.weighted(STYLES);
  const localAddress = `127.0.${rng.int(1, 254)}.${rng.int(1, 254)}`;
  return { scenario, point, style, localAddress, rng };
}

export async function runChaos(
  target: ChaosTarget,
  ledger: Ledger,
  options: ChaosOptions,
): Promise<ChaosResult> {
  const root = new Prng(options.seed);
  const first = options.firstCycle ?? 0;
  const result: ChaosResult = {
    cycles: 0,
    ms: 0,
    failures: [],
    byScenario: new Map(SCENARIOS.map((s) => [s.scenario.name, { runs: 0, cut: 0, completed: 0 }])),
    byStyle: { fin: 0, close: 0, rst: 0 },
    byAddress: new Map(),
  };
  let failed = 0;
  const t0 = performance.now();
  let next = first;
  const worker = async () => {
    while (next < first + options.cycles) {
      const index = next++;
      const { scenario, point, style, localAddress, rng } = planCycle(root, index, options.only);
      const cx = new Cx({ index, rng, style, target, ledger, localAddress }, point);
      const stats = result.byScenario.get(scenario.name)!;
      stats.runs++;
      result.byStyle[style]++;
      const what =
        `cycle ${index} [${scenario.name}, cut at ${point}, ${style}, from ${localAddress}]`;
      const seen = result.byAddress.get(localAddress) ?? [];
      seen.push(what);
      result.byAddress.set(localAddress, seen);
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
      }
      // After our FIN the server must close its side; a socket it keeps is a leak.
      for (const c of cx.conns) {
        if (c.finAnswered && !(await c.finAnswered)) {
          failed++;
          if (result.failures.length < MAX_REPORTED) {
            result.failures.push(`${what}: the server did not close after our FIN`);
          }
        }
        c.close();
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
