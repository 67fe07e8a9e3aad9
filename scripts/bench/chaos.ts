// The disconnect-chaos figures (issue 16): cycles per second of clients vanishing at random
// points on every listener, the relay's RSS before, at its peak and after a settle, and the worst
// latency a well-behaved client saw meanwhile. tern alone: the sessions use tern's own listeners
// (HTTPS /new and /mxdeliv) and its just-in-time accounts.

import { startTern } from "../../tests/support/tern_process.ts";
import { CHAOS_TOML, chaosRun, summary } from "../../tests/support/chaos_run.ts";

export interface ChaosBench {
  seed: number;
  cycles: number;
  concurrency: number;
  cycles_per_s: number;
  failed_cycles: number;
  died: boolean;
  rss_base_mb: number;
  rss_peak_mb: number;
  rss_after_mb: number;
  bystander_ops: number;
  bystander_p99_ms: number;
  bystander_worst_ms: number;
  ledger_problems: number;
}

const mb = (b: number) => Math.round(b / 1048576 * 10) / 10;

export async function chaosBench(
  options: { seed: number; cycles: number; concurrency: number },
  log: (line: string) => void,
): Promise<ChaosBench> {
  const tern = await startTern(CHAOS_TOML, { log: "off" });
  try {
    log(`chaos: ${options.cycles} cycles, ${options.concurrency} at once, seed ${options.seed}`);
    const r = await chaosRun(tern, { ...options, warmup: 100 });
    if (!r.died) console.log(summary(r));
    const lat = [...r.bystander.latencies].sort((a, b) => a - b);
    const at = (p: number) =>
      lat.length ? lat[Math.min(lat.length - 1, Math.ceil(p / 100 * lat.length) - 1)] : 0;
    return {
      seed: options.seed,
      cycles: r.result.cycles,
      concurrency: options.concurrency,
      cycles_per_s: Math.round(r.result.cycles / (r.result.ms / 1000) * 10) / 10,
      failed_cycles: r.warmup.failures.length + r.result.failures.length,
      died: r.died,
      rss_base_mb: mb(r.rss.base),
      rss_peak_mb: mb(r.rss.peak),
      rss_after_mb: mb(r.rss.after),
      bystander_ops: r.bystander.imapCommands + r.bystander.submissions,
      bystander_p99_ms: Math.round(at(99)),
      bystander_worst_ms: Math.round(at(100)),
      ledger_problems: r.ledger.problems.length,
    };
  } finally {
    await tern.stop();
  }
}

/** The figures as the benchmark prints them. */
export function chaosTable(c: ChaosBench): string {
  return [
    `chaos (seed ${c.seed}, ${c.concurrency} at once)${c.died ? ": THE RELAY DIED" : ""}`,
    `  cycles                     ${c.cycles} (${c.failed_cycles} failed)`,
    `  cycles/s                   ${c.cycles_per_s}`,
    `  RSS before / peak / after  ${c.rss_base_mb} / ${c.rss_peak_mb} / ${c.rss_after_mb} MB`,
    `  bystander p99 / worst      ${c.bystander_p99_ms} / ${c.bystander_worst_ms} ms ` +
    `(${c.bystander_ops} operations)`,
    `  ledger problems            ${c.ledger_problems}`,
  ].join("\n");
}
