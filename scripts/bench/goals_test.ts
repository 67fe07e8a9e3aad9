import { strict as assert } from "node:assert";
import { evaluateGoals, type Goal, goalSummary, goalTable } from "./goals.ts";
import { chartSvg } from "./chart.ts";

const goals: Goal[] = [
  { id: "thr", label: "throughput", kind: "ratio", bound: "min", target: 4, digits: 0 },
  { id: "time", label: "storm time", kind: "ratio", bound: "max", target: 1, digits: 2 },
  { id: "rss", label: "idle RSS", kind: "abs", bound: "max", target: 60, unit: "MB", digits: 1 },
  {
    id: "conns",
    label: "RSS with 10 000",
    kind: "abs",
    bound: "max",
    target: 250,
    unit: "MB",
    digits: 1,
    needs: { option: "idleConns", value: 10_000, what: "idle connections" },
  },
];

Deno.test("goals: ratios and absolute bounds are judged, missing figures are not", () => {
  const rows = evaluateGoals(
    { thr: 400, time: 5, rss: 61, conns: 200 },
    { thr: 100, time: 4, rss: 30, conns: 9000 },
    { idleConns: 10_000 },
    goals,
  );
  assert.deepEqual(rows.map((r) => r.met), [true, false, false, true]);
  assert.equal(rows[0].ratio, 4);
  assert.equal(rows[1].goal, "≤ ref");
  assert.equal(rows[0].goal, "≥ 4× ref");
  assert.equal(rows[2].goal, "≤ 60 MB");

  const partial = evaluateGoals(
    { thr: 400, rss: NaN, conns: 200 },
    null,
    { idleConns: 2000 },
    goals,
  );
  assert.deepEqual(partial.map((r) => r.met), [null, null, null, null]);
  assert.equal(partial[0].why, "no reference figure");
  assert.equal(partial[1].why, "not measured");
  assert.equal(partial[3].why, "measured with 2000 idle connections, the goal is for 10000");
});

Deno.test("goals: the table names every figure, both values, the ratio, the goal and the verdict", () => {
  const rows = evaluateGoals(
    { thr: 300, time: 1, rss: 55 },
    { thr: 100, time: 2, rss: 30 },
    {},
    goals,
  );
  const text = goalTable(rows, goals);
  const lines = text.split("\n");
  assert.equal(lines.length, 2 + goals.length);
  assert.match(lines[0], /tern \| postfix\+dovecot \| tern\/ref \| +goal \| met\?/);
  assert.match(lines[2], /^throughput +\| +300 \| +100 \| +3\.00× \| ≥ 4× ref \| NO$/);
  assert.match(lines[3], /^storm time +\| +1\.00 \| +2\.00 \| +0\.50× \| +≤ ref \| yes$/);
  assert.match(lines[4], /idle RSS .*\| +55\.0 \| +30\.0 .*≤ 60 MB \| yes$/);
  assert.match(lines[5], /not judged \(measured with \? idle connections/);
  assert.equal(goalSummary(rows), "goals met: 2 of 3 judged (1 not judged); not met: throughput");
});

Deno.test("chart: one SVG with both servers' bars, ratios, goal marks and the footer", () => {
  const tern = {
    sub2k_accepted_s: 800,
    sub2k_delivered_s: 790,
    deliv_p50_ms: 0.4,
    idle_rss_mb: 90,
  };
  const ref = {
    sub2k_accepted_s: 400,
    sub2k_delivered_s: 150,
    deliv_p50_ms: 510,
    idle_rss_mb: 110,
  };
  const rows = evaluateGoals(tern, ref, {});
  const svg = chartSvg({
    tern,
    ref,
    goals: rows,
    footer: ["2026-12-03 · 2 × Test CPU <fast> & cheap"],
  });
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  // a panel only when it has figures; rows without figures are left out
  assert.match(svg, /Throughput/);
  assert.match(svg, /Latency/);
  assert.doesNotMatch(svg, /FETCH/);
  // ratios with the goal's verdict: 2.00× meets "accepted ≥ 2×", 5.27× meets "delivered ≥ 4×"
  assert.match(svg, />2\.00× ✓</);
  assert.match(svg, />5\.27× ✓</);
  assert.match(svg, />0\.82× ✗</); // idle RSS 90 MB > 60 MB
  // text is escaped
  assert.match(svg, /Test CPU &lt;fast&gt; &amp; cheap/);
  const bars = [...svg.matchAll(/<rect x="\d+" y="[\d.]+" width="([\d.]+)" height="11"/g)];
  assert.equal(bars.length, 8);
  // in a row, the larger value spans the full width
  assert.equal(Number(bars[0][1]), 400);
  assert.equal(Number(bars[1][1]), 200);
});
