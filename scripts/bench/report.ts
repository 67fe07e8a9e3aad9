// The metric table: definitions, the side-by-side text table and the baseline comparison.

export type Values = Record<string, number | null>;

export interface MetricDef {
  id: string;
  label: string;
  better: "higher" | "lower" | "none";
  digits: number;
  /** Differences below this (in the metric's unit) are never called a regression. */
  floor?: number;
}

export const METRICS: MetricDef[] = [
  {
    id: "start_fresh_ms",
    label: "cold start, fresh data dir (ms)",
    better: "lower",
    digits: 0,
    floor: 100,
  },
  {
    id: "start_restart_ms",
    label: "restart, existing data dir (ms)",
    better: "lower",
    digits: 0,
    floor: 100,
  },
  {
    id: "parse_25mib_ms",
    label: "parse a 25 MiB single-part message (ms)",
    better: "lower",
    digits: 0,
    floor: 20,
  },
  {
    id: "idle_rss_mb",
    label: "idle memory, RSS (MB; release bundle)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_pss_mb",
    label: "idle memory, PSS (MB; release bundle)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_rss_src_mb",
    label: "idle memory, RSS (MB; deno run main.ts)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_pss_src_mb",
    label: "idle memory, PSS (MB; deno run main.ts)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_rss_bundle_first_mb",
    label: "idle memory after the bundle's first start, RSS (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_rss_fresh_mb",
    label: "idle memory after a first start, RSS (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  { id: "sub2k_accepted_s", label: "submit 2 KB: accepted msgs/s", better: "higher", digits: 0 },
  {
    id: "sub2k_p50_ms",
    label: "submit 2 KB: MAIL→250 p50 (ms)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  {
    id: "sub2k_p99_ms",
    label: "submit 2 KB: MAIL→250 p99 (ms)",
    better: "lower",
    digits: 1,
    floor: 10,
  },
  { id: "sub2k_delivered_s", label: "submit 2 KB: delivered msgs/s", better: "higher", digits: 0 },
  {
    id: "sub2k_drain_s",
    label: "submit 2 KB: delivery lag after send (s)",
    better: "lower",
    digits: 2,
    floor: 0.5,
  },
  {
    id: "sub2k_noop_p99_ms",
    label: "submit 2 KB: another user's NOOP p99 (ms, goal ≤ 5)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  {
    id: "sub2k_cpu_ms",
    label: "submit 2 KB: server CPU per message (ms)",
    better: "lower",
    digits: 2,
    floor: 0.1,
  },
  {
    id: "sub100k_accepted_s",
    label: "submit 100 KB: accepted msgs/s",
    better: "higher",
    digits: 0,
  },
  {
    id: "sub100k_p50_ms",
    label: "submit 100 KB: MAIL→250 p50 (ms)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  {
    id: "sub100k_p99_ms",
    label: "submit 100 KB: MAIL→250 p99 (ms)",
    better: "lower",
    digits: 1,
    floor: 10,
  },
  {
    id: "sub100k_delivered_s",
    label: "submit 100 KB: delivered msgs/s",
    better: "higher",
    digits: 0,
  },
  {
    id: "sub100k_drain_s",
    label: "submit 100 KB: delivery lag after send (s)",
    better: "lower",
    digits: 2,
    floor: 0.5,
  },
  {
    id: "sub100k_noop_p99_ms",
    label: "submit 100 KB: another user's NOOP p99 (ms, goal ≤ 5)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  {
    id: "sub100k_cpu_ms",
    label: "submit 100 KB: server CPU per message (ms)",
    better: "lower",
    digits: 2,
    floor: 0.1,
  },
  {
    id: "deliv_p50_ms",
    label: "delivery 250→EXISTS p50 (ms)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  {
    id: "deliv_p99_ms",
    label: "delivery 250→EXISTS p99 (ms)",
    better: "lower",
    digits: 1,
    floor: 10,
  },
  {
    id: "deliv_dot_p50_ms",
    label: "delivery end-of-DATA→EXISTS p50 (ms)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  { id: "deliv_lost", label: "delivery: lost of 50", better: "lower", digits: 0, floor: 0.5 },
  { id: "signup_s", label: "sign-up storm: new clients idling (s)", better: "lower", digits: 2 },
  {
    id: "signup_again_s",
    label: "sign-up storm: the same clients again (s)",
    better: "lower",
    digits: 2,
    floor: 0.2,
  },
  {
    id: "signup_probe_p99_ms",
    label: "sign-up storm: another session's NOOP p99 (ms)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "signup_probe_max_ms",
    label: "sign-up storm: another session's NOOP max (ms)",
    better: "lower",
    digits: 1,
    floor: 10,
  },
  {
    id: "signup_cpu_ms",
    label: "sign-up storm: server CPU per new client (ms)",
    better: "lower",
    digits: 2,
    floor: 0.5,
  },
  {
    id: "prelogin_rss_growth_mb",
    label: "pre-login: RSS growth, 200 conns × 1 MB commands (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "prelogin_rss_after_mb",
    label: "pre-login: RSS after they are cut off (MB)",
    better: "lower",
    digits: 1,
  },
  { id: "idle_conns", label: "IDLE: connections established", better: "higher", digits: 0 },
  {
    id: "idle_establish_s",
    label: "IDLE: time to establish (s)",
    better: "lower",
    digits: 2,
    floor: 0.5,
  },
  {
    id: "idle_rss_before_mb",
    label: "IDLE: IMAP RSS before (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_rss_after_mb",
    label: "IDLE: IMAP RSS with N idle (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_pss_after_mb",
    label: "IDLE: IMAP PSS with N idle (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_kb_per_conn",
    label: "IDLE: PSS per connection (KiB)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  {
    id: "idle_rss_wait_mb",
    label: "IDLE: IMAP RSS after idle wait (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_kb_per_conn_wait",
    label: "IDLE: PSS/conn after idle wait (KiB)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  {
    id: "idle_wake_ms",
    label: "IDLE: wake one user, 250→EXISTS (ms)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "idle_woken",
    label: "IDLE: woken user's connections seeing EXISTS (of 8)",
    better: "higher",
    digits: 0,
    floor: 0.5,
  },
  { id: "fetch2k_mb_s", label: "FETCH BODY[] 2 KB msgs (MB/s)", better: "higher", digits: 1 },
  { id: "fetch2k_msgs_s", label: "FETCH BODY[] 2 KB msgs (msgs/s)", better: "higher", digits: 0 },
  { id: "fetch100k_mb_s", label: "FETCH BODY[] 100 KB msgs (MB/s)", better: "higher", digits: 1 },
  { id: "append2k_msgs_s", label: "APPEND 2 KB (msgs/s, pipelined)", better: "higher", digits: 0 },
  {
    id: "append100k_msgs_s",
    label: "APPEND 100 KB (msgs/s, pipelined)",
    better: "higher",
    digits: 0,
  },
  {
    id: "dc_securejoin_ms",
    label: "Delta Chat: Secure-Join (ms)",
    better: "lower",
    digits: 0,
    floor: 50,
  },
  {
    id: "dc_p50_ms",
    label: "Delta Chat: send → receive p50 (ms)",
    better: "lower",
    digits: 0,
    floor: 10,
  },
  {
    id: "dc_p90_ms",
    label: "Delta Chat: send → receive p90 (ms)",
    better: "lower",
    digits: 0,
    floor: 10,
  },
  ...scaleMetrics(),
  {
    id: "iroh_http_mb_s",
    label: "iroh relay over HTTP: A → B (MB/s)",
    better: "higher",
    digits: 1,
  },
  {
    id: "iroh_https_mb_s",
    label: "iroh relay over HTTPS: A → B (MB/s)",
    better: "higher",
    digits: 1,
  },
  {
    id: "iroh_http_cpu_ms_mb",
    label: "iroh relay over HTTP: server CPU per MB (ms)",
    better: "lower",
    digits: 1,
    floor: 1,
  },
  {
    id: "iroh_https_cpu_ms_mb",
    label: "iroh relay over HTTPS: server CPU per MB (ms)",
    better: "lower",
    digits: 1,
    floor: 1,
  },
  {
    id: "iroh_rtt_p50_ms",
    label: "iroh relay: round trip A → B → A p50 (ms)",
    better: "lower",
    digits: 3,
    floor: 0.1,
  },
  {
    id: "iroh_rtt_p99_ms",
    label: "iroh relay: round trip p99 (ms)",
    better: "lower",
    digits: 3,
    floor: 0.5,
  },
  {
    id: "iroh_added_ms",
    label: "iroh relay: added latency per packet p50 (ms)",
    better: "lower",
    digits: 3,
    floor: 0.1,
  },
  {
    id: "mem_af_growth_mb",
    label: "memory: RSS growth, 50 APPEND + 50 FETCH of 30 MB (MB, goal ≤ 300)",
    better: "lower",
    digits: 0,
    floor: 20,
  },
  {
    id: "mem_af_pss_growth_mb",
    label: "memory: PSS growth, 50 APPEND + 50 FETCH of 30 MB (MB)",
    better: "lower",
    digits: 0,
    floor: 20,
  },
  {
    id: "mem_af_seconds",
    label: "memory: 50 APPEND + 50 FETCH of 30 MB, time (s)",
    better: "lower",
    digits: 1,
    floor: 2,
  },
  {
    id: "mem_af_noop_p99_ms",
    label: "memory: another user's NOOP p99 meanwhile (ms)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "mem_data_growth_mb",
    label: "memory: RSS held by 20 × 5 MiB unterminated DATA (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "mem_data_second_growth_mb",
    label: "memory: RSS growth, the same 20 × 5 MiB again (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "mem_data_pss_growth_mb",
    label: "memory: PSS held by 20 × 5 MiB unterminated DATA (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "mem_worst_noop_max_ms",
    label: "gate worst cases at the size limit: another user's NOOP max (ms)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "mem_worst_noop_p99_ms",
    label: "gate worst cases at the size limit: another user's NOOP p99 (ms)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "final_rss_mb",
    label: "memory after the run, RSS (MB)",
    better: "lower",
    digits: 1,
    floor: 5,
  },
  {
    id: "fed_accepted_s",
    label: "federation: accepted msgs/s",
    better: "higher",
    digits: 0,
  },
  {
    id: "fed_landed_s",
    label: "federation: landed msgs/s",
    better: "higher",
    digits: 0,
  },
  {
    id: "fed_p50_ms",
    label: "federation: 250→EXISTS p50 (ms)",
    better: "lower",
    digits: 0,
    floor: 20,
  },
  {
    id: "fed_p99_ms",
    label: "federation: 250→EXISTS p99 (ms)",
    better: "lower",
    digits: 0,
    floor: 50,
  },
  {
    id: "fed_drain_s",
    label: "federation: last arrival after last 250 (s)",
    better: "lower",
    digits: 2,
    floor: 0.5,
  },
  { id: "fed_lost", label: "federation: lost", better: "lower", digits: 0, floor: 0.5 },
  {
    id: "fed_cpu_ms",
    label: "federation: CPU per message, both sides (ms)",
    better: "lower",
    digits: 2,
    floor: 0.2,
  },
  {
    id: "fedsilent_accepted_s",
    label: "federation with a silent peer: accepted msgs/s",
    better: "higher",
    digits: 0,
  },
  {
    id: "fedsilent_landed_s",
    label: "federation with a silent peer: landed msgs/s",
    better: "higher",
    digits: 0,
  },
  {
    id: "fedsilent_p50_ms",
    label: "federation with a silent peer: 250→EXISTS p50 (ms)",
    better: "lower",
    digits: 0,
    floor: 20,
  },
  {
    id: "fedsilent_p99_ms",
    label: "federation with a silent peer: 250→EXISTS p99 (ms)",
    better: "lower",
    digits: 0,
    floor: 50,
  },
  {
    id: "fedsilent_drain_s",
    label: "federation with a silent peer: last arrival after last 250 (s)",
    better: "lower",
    digits: 2,
    floor: 0.5,
  },
  {
    id: "fedsilent_lost",
    label: "federation with a silent peer: lost",
    better: "lower",
    digits: 0,
    floor: 0.5,
  },
];

/** The scale scenario's metrics; stage k is the k-th mailbox size (labels: scaleLabels). */
function scaleMetrics(): MetricDef[] {
  const out: MetricDef[] = [
    {
      id: "scale_append_empty_s",
      label: "big mailbox: APPEND into empty (msgs/s)",
      better: "higher",
      digits: 0,
    },
  ];
  for (let k = 1; k <= 3; k++) {
    out.push(
      {
        id: `scale_append_${k}_s`,
        label: `big mailbox ${k}: APPEND (msgs/s)`,
        better: "higher",
        digits: 0,
      },
      {
        id: `scale_select_${k}_ms`,
        label: `big mailbox ${k}: SELECT (ms)`,
        better: "lower",
        digits: 1,
        floor: 2,
      },
      {
        id: `scale_unseen_${k}_ms`,
        label: `big mailbox ${k}: UID SEARCH UNSEEN (ms)`,
        better: "lower",
        digits: 1,
        floor: 2,
      },
      {
        id: `scale_text_${k}_ms`,
        label: `big mailbox ${k}: SEARCH TEXT (ms)`,
        better: "lower",
        digits: 0,
        floor: 10,
      },
      {
        id: `scale_resync_${k}_ms`,
        label: `big mailbox ${k}: CHANGEDSINCE, 10 changes (ms)`,
        better: "lower",
        digits: 1,
        floor: 1,
      },
      {
        id: `scale_fetchflags_${k}_ms`,
        label: `big mailbox ${k}: UID FETCH 1:* (FLAGS) (ms)`,
        better: "lower",
        digits: 0,
        floor: 10,
      },
      {
        id: `scale_noop_p99_${k}_ms`,
        label: `big mailbox ${k}: other user's NOOP p99 (ms)`,
        better: "lower",
        digits: 1,
        floor: 5,
      },
      {
        id: `scale_noop_worst_${k}_ms`,
        label: `big mailbox ${k}: other user's NOOP worst (ms)`,
        better: "lower",
        digits: 1,
        floor: 5,
      },
    );
  }
  out.push(
    {
      id: "scale_expunge_s",
      label: "big mailbox: STORE+EXPUNGE 90% (s)",
      better: "lower",
      digits: 2,
      floor: 0.2,
    },
    {
      id: "scale_expunge_noop_worst_ms",
      label: "big mailbox: other user's NOOP worst during it (ms)",
      better: "lower",
      digits: 1,
      floor: 5,
    },
    {
      id: "scale_storage_before_mb",
      label: "big mailbox: storage before expunge (MB)",
      better: "lower",
      digits: 1,
      floor: 1,
    },
    {
      id: "scale_storage_after_mb",
      label: "big mailbox: storage after expunge (MB)",
      better: "lower",
      digits: 1,
      floor: 1,
    },
    {
      id: "scale_bytes_per_msg_before",
      label: "big mailbox: bytes per live message before",
      better: "lower",
      digits: 0,
      floor: 50,
    },
    {
      id: "scale_bytes_per_msg_after",
      label: "big mailbox: bytes per live message after",
      better: "lower",
      digits: 0,
      floor: 50,
    },
    {
      id: "scale_rss_after_mb",
      label: "big mailbox: IMAP RSS after expunge (MB)",
      better: "lower",
      digits: 1,
      floor: 5,
    },
  );
  return out;
}

/** Labels naming the mailbox size of each scale stage. */
export function scaleLabels(sizes: number[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const def of scaleMetrics()) {
    const m = /^scale_\w+?_(\d)_/.exec(def.id);
    if (!m) continue;
    const size = sizes[Number(m[1]) - 1];
    if (size !== undefined) out[def.id] = def.label.replace(/big mailbox \d/, `${size} msgs`);
  }
  return out;
}

function fmt(v: number | null | undefined, digits: number): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return v.toFixed(digits);
}

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a == null || b == null || Number.isNaN(a) || Number.isNaN(b) || b === 0) return "–";
  const r = a / b;
  return r >= 100 ? `${r.toFixed(0)}×` : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

/** Whether tern is better (+), worse (-) or neither, by the metric's direction. */
function verdict(def: MetricDef, a: number | null | undefined, b: number | null | undefined) {
  if (def.better === "none" || a == null || b == null || Number.isNaN(a) || Number.isNaN(b)) {
    return "";
  }
  if (Math.abs(a - b) <= (def.floor ?? 0) || Math.abs(a - b) <= 0.05 * Math.max(a, b)) return "≈";
  return (def.better === "higher") === (a > b) ? "tern" : "ref";
}

export function table(
  tern: Values,
  ref: Values | null,
  labels: Record<string, string> = {},
): string {
  const rows: string[][] = [["metric", "tern", "postfix+dovecot", "tern/ref", "better"]];
  for (const d of METRICS) {
    const a = tern[d.id];
    const b = ref?.[d.id];
    if ((a == null || Number.isNaN(a)) && (b == null || Number.isNaN(b))) continue;
    rows.push([
      labels[d.id] ?? d.label,
      fmt(a, d.digits),
      ref ? fmt(b, d.digits) : "(not run)",
      ratio(a, b),
      verdict(d, a, b),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => [...r[c]].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])).join(" | ");
  const sep = widths.map((w) => "-".repeat(w)).join("-|-");
  return [line(rows[0]), sep, ...rows.slice(1).map(line)].join("\n");
}

/** Lines describing tern metrics more than `limit` (0.2 = 20%) worse than the baseline. */
/** The run options a metric depends on: it is only compared when they match the baseline's. */
function dependsOn(id: string): string[] | "all" {
  if (id === "final_rss_mb") return "all";
  if (id.startsWith("sub")) return ["durationMs", "sessions"];
  if (id.includes("2k_") && !id.startsWith("sub")) return ["fetch2kMessages"];
  if (id.includes("100k_") && !id.startsWith("sub")) return ["fetch100kMessages"];
  if (id.startsWith("idle_") && id.includes("wait")) return ["idleConns", "idleWaitMs"];
  if (id.startsWith("idle_") && !/^idle_(rss|pss)(_src)?_mb$/.test(id)) {
    return ["idleConns", "idlePerUser"];
  }
  if (id.startsWith("start_")) return ["restarts"];
  if (id.startsWith("scale_")) return ["scaleSizes"];
  if (id.startsWith("signup_")) return ["signupClients", "signupInFlight"];
  if (id.startsWith("prelogin_")) return ["preloginConns", "preloginBytes"];
  if (id.startsWith("iroh_")) return ["durationMs", "irohRoundTrips"];
  if (id.startsWith("mem_")) return ["memory"];
  return [];
}

type Options = Record<string, unknown>;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Lines describing tern metrics more than `limit` (0.2 = 20%) worse than the baseline. Metrics
 * whose run options differ from the baseline's are listed in `skipped` instead.
 */
export function regressions(
  current: { tern: Values; ref: Values | null; options?: Options },
  baseline: { tern: Values; ref?: Values | null; options?: Options },
  limit = 0.2,
): { lines: string[]; skipped: string[] } {
  const out: string[] = [];
  const skipped: string[] = [];
  const co = current.options ?? {}, bo = baseline.options ?? {};
  for (const d of METRICS) {
    if (d.better === "none") continue;
    const deps = dependsOn(d.id);
    const keys = deps === "all" ? [...new Set([...Object.keys(co), ...Object.keys(bo)])] : deps;
    if (keys.some((k) => !same(co[k], bo[k]))) {
      if (current.tern[d.id] != null && baseline.tern?.[d.id] != null) skipped.push(d.id);
      continue;
    }
    const now = current.tern[d.id], was = baseline.tern?.[d.id];
    if (now == null || was == null || Number.isNaN(now) || Number.isNaN(was)) continue;
    if (Math.abs(now - was) <= (d.floor ?? 0)) continue;
    const worse = d.better === "higher" ? (was - now) / was : (now - was) / Math.max(was, 1e-9);
    if (worse <= limit) continue;
    let line = `${d.label}: ${fmt(now, d.digits)} (baseline ${fmt(was, d.digits)}, ${
      (worse * 100).toFixed(0)
    }% worse)`;
    const rn = current.ref?.[d.id], rw = baseline.ref?.[d.id];
    if (rn != null && rw != null && !Number.isNaN(rn) && !Number.isNaN(rw) && rw !== 0) {
      line += `; refstack moved ${(((rn - rw) / rw) * 100).toFixed(0)}% in the same comparison`;
    }
    out.push(line);
  }
  return { lines: out, skipped };
}
