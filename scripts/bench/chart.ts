// The benchmark's chart (SVG, no dependencies): throughput, latency and memory, tern beside
// Postfix + Dovecot from one run, each row scaled to its own larger value, with the ratio and,
// for the issue's goals, whether the goal is met. The footer names the date, machine and load.

import type { Values } from "./report.ts";
import { fmtRatio, type GoalRow } from "./goals.ts";

export interface ChartRow {
  id: string;
  label: string;
  digits: number;
}

export interface ChartPanel {
  title: string;
  rows: ChartRow[];
}

export const PANELS: ChartPanel[] = [
  {
    title: "Throughput — higher is better",
    rows: [
      { id: "sub2k_accepted_s", label: "submit 2 KB, 8 TLS sessions: accepted msgs/s", digits: 0 },
      { id: "sub2k_delivered_s", label: "submit 2 KB: delivered msgs/s", digits: 0 },
      { id: "sub100k_accepted_s", label: "submit 100 KB: accepted msgs/s", digits: 0 },
      { id: "sub100k_delivered_s", label: "submit 100 KB: delivered msgs/s", digits: 0 },
      { id: "append2k_msgs_s", label: "IMAP APPEND 2 KB: msgs/s", digits: 0 },
      { id: "fetch2k_msgs_s", label: "IMAP FETCH 2 KB: msgs/s", digits: 0 },
      { id: "fetch100k_mb_s", label: "IMAP FETCH 100 KB: MB/s", digits: 1 },
    ],
  },
  {
    title: "Latency — lower is better",
    rows: [
      { id: "sub2k_p50_ms", label: "submit 2 KB: MAIL → 250, p50 (ms)", digits: 1 },
      { id: "sub100k_p50_ms", label: "submit 100 KB: MAIL → 250, p50 (ms)", digits: 1 },
      { id: "deliv_p50_ms", label: "250 → IDLE EXISTS, p50 (ms)", digits: 1 },
      { id: "dc_p50_ms", label: "Delta Chat send → receive, p50 (ms)", digits: 0 },
      { id: "signup_s", label: "sign-up storm: new clients idling (s)", digits: 1 },
      { id: "signup_again_s", label: "the same clients again (s)", digits: 1 },
    ],
  },
  {
    title: "Memory and CPU — lower is better",
    rows: [
      { id: "idle_rss_mb", label: "idle RSS right after start (MB)", digits: 1 },
      { id: "idle_rss_after_mb", label: "RSS with N idle IMAP connections (MB)", digits: 0 },
      { id: "sub2k_cpu_ms", label: "server CPU per 2 KB message (ms)", digits: 2 },
    ],
  },
];

export interface ChartInput {
  tern: Values;
  ref: Values | null;
  goals: GoalRow[];
  /** Row labels that depend on the run (e.g. the number of idle connections). */
  labels?: Record<string, string>;
  /** Footer lines: date, machine, load, options. */
  footer: string[];
}

const W = 920;
const LABEL_W = 330;
const BAR_X = LABEL_W + 10;
const BAR_W = 400;
const TERN = "#1f6feb";
const REF = "#9a9a9a";

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

const has = (v: number | null | undefined): v is number => v != null && !Number.isNaN(v);

export function chartSvg(input: ChartInput): string {
  const goals = new Map(input.goals.map((g) => [g.id, g]));
  const out: string[] = [];
  let y = 0;
  const text = (x: number, yy: number, s: string, attrs = "") =>
    out.push(`<text x="${x}" y="${yy}"${attrs ? " " + attrs : ""}>${esc(s)}</text>`);

  y += 28;
  text(16, y, "tern vs Postfix + Dovecot: the same load, the same machine, one run", 'class="h1"');
  y += 22;
  const legendY = y;
  out.push(`<rect x="16" y="${legendY - 10}" width="12" height="12" fill="${TERN}"/>`);
  text(34, legendY, "tern");
  out.push(`<rect x="84" y="${legendY - 10}" width="12" height="12" fill="${REF}"/>`);
  text(102, legendY, "Postfix + Dovecot (reference chatmail setup)");
  text(
    W - 16,
    legendY,
    "ratio = tern ÷ reference; ✓/✗ = issue 21 goal met/missed",
    'text-anchor="end" class="small"',
  );
  y += 10;

  for (const panel of PANELS) {
    const rows = panel.rows.filter((r) => has(input.tern[r.id]) || has(input.ref?.[r.id]));
    if (!rows.length) continue;
    y += 26;
    text(16, y, panel.title, 'class="h2"');
    y += 8;
    for (const r of rows) {
      const a = input.tern[r.id], b = input.ref?.[r.id];
      const max = Math.max(has(a) ? a : 0, has(b) ? b : 0) || 1;
      const top = y + 6;
      text(16, top + 15, input.labels?.[r.id] ?? r.label);
      const bar = (v: number | null | undefined, yy: number, color: string) => {
        if (!has(v)) {
          text(BAR_X, yy + 9, "not measured", 'class="small"');
          return;
        }
        const w = Math.max(1, (v / max) * BAR_W);
        out.push(
          `<rect x="${BAR_X}" y="${yy}" width="${w.toFixed(1)}" height="11" fill="${color}"/>`,
        );
        text(BAR_X + w + 5, yy + 9.5, v.toFixed(r.digits), 'class="small"');
      };
      bar(a, top, TERN);
      bar(b, top + 13, REF);
      if (has(a) && has(b) && b !== 0) {
        const g = goals.get(r.id);
        const mark = g && g.met !== null ? (g.met ? " ✓" : " ✗") : "";
        const cls = g && g.met !== null ? (g.met ? "ok" : "bad") : "";
        text(W - 16, top + 15, fmtRatio(a / b) + mark, `text-anchor="end" class="ratio ${cls}"`);
      } else {
        const g = goals.get(r.id);
        if (g && g.met !== null) {
          text(
            W - 16,
            top + 15,
            `${g.goal} ${g.met ? "✓" : "✗"}`,
            `text-anchor="end" class="ratio ${g.met ? "ok" : "bad"}"`,
          );
        }
      }
      y = top + 30;
    }
  }
  y += 14;
  for (const f of input.footer) {
    y += 15;
    text(16, y, f, 'class="small"');
  }
  y += 14;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" ` +
    `font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`,
    "<style>.h1{font-size:16px;font-weight:600}.h2{font-size:13px;font-weight:600}" +
    ".small{font-size:10.5px;fill:#555}.ratio{font-size:12px;font-weight:600}" +
    ".ok{fill:#1a7f37}.bad{fill:#cf222e}</style>",
    `<rect width="${W}" height="${y}" fill="#fff"/>`,
    ...out,
    "</svg>",
    "",
  ].join("\n");
}
