// Checks the exposition text with a small parser written from the text format 0.0.4 spec:
// HELP/TYPE before samples, one contiguous group per family, label escaping, cumulative buckets.

import assert from "node:assert/strict";
import { createRelayMetrics, MetricsRegistry, MinuteSeries } from "./mod.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  name: string;
  type?: string;
  help?: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseValue(s: string): number {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value "${s}"`);
  return Number(s);
}

function parseLabels(text: string, at: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1;
  while (text[i] !== "}") {
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
    if (!m) throw new Error(`bad label name at ${i} in ${text}`);
    i += m[0].length;
    if (text[i] !== "=" || text[i + 1] !== '"') throw new Error(`expected =" in ${text}`);
    i += 2;
    let v = "";
    while (text[i] !== '"') {
      if (i >= text.length) throw new Error(`unterminated label value in ${text}`);
      if (text[i] === "\\") {
        const e = text[i + 1];
        if (e === "\\") v += "\\";
        else if (e === '"') v += '"';
        else if (e === "n") v += "\n";
        else throw new Error(`bad escape \\${e} in ${text}`);
        i += 2;
      } else v += text[i++];
    }
    if (m[0] in labels) throw new Error(`duplicate label ${m[0]}`);
    labels[m[0]] = v;
    i++;
    if (text[i] === ",") i++;
    else if (text[i] !== "}") throw new Error(`expected , or } in ${text}`);
  }
  return { labels, end: i + 1 };
}

function familyOf(name: string, families: Map<string, Family>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && families.get(base)?.type === "histogram") return base;
  }
  return name;
}

/** Parses exposition text and checks the format rules; throws on the first violation. */
function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("text must end with a line feed");
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  let current: string | null = null;
  const enter = (name: string) => {
    if (current !== name) {
      if (closed.has(name)) throw new Error(`family ${name} is not contiguous`);
      if (current) closed.add(current);
      current = name;
    }
    if (!families.has(name)) families.set(name, { name, samples: [] });
    return families.get(name)!;
  };
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const f = enter(meta[2]);
      if (f.samples.length > 0) throw new Error(`${meta[1]} after samples of ${meta[2]}`);
      if (meta[1] === "TYPE") {
        if (f.type) throw new Error(`second TYPE for ${meta[2]}`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(meta[3])) {
          throw new Error(`bad type ${meta[3]}`);
        }
        f.type = meta[3];
      } else {
        if (f.help !== undefined) throw new Error(`second HELP for ${meta[2]}`);
        f.help = meta[3].replace(/\\(\\|n)/g, (_, c) => (c === "n" ? "\n" : "\\"));
      }
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = NAME.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    let rest = line.slice(m[0].length);
    let labels: Record<string, string> = {};
    if (rest.startsWith("{")) {
      const p = parseLabels(rest, 0);
      labels = p.labels;
      rest = rest.slice(p.end);
    }
    const parts = rest.trim().split(" ");
    if (!rest.startsWith(" ") || parts.length < 1 || parts.length > 2) {
      throw new Error(`bad sample: ${line}`);
    }
    const f = enter(familyOf(m[0], families));
    if (!f.type) throw new Error(`sample of ${f.name} before its TYPE`);
    f.samples.push({ name: m[0], labels, value: parseValue(parts[0]) });
  }
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

function checkHistogram(f: Family) {
  const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    if (!groups.has(key)) groups.set(key, { buckets: [] });
    const g = groups.get(key)!;
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`bucket without le in ${f.name}`);
      g.buckets.push([parseValue(le), s.value]);
    } else if (s.name === `${f.name}_count`) g.count = s.value;
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else throw new Error(`unexpected sample ${s.name} in histogram ${f.name}`);
  }
  for (const g of groups.values()) {
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i][0] > g.buckets[i - 1][0])) throw new Error(`${f.name}: le not increasing`);
      if (g.buckets[i][1] < g.buckets[i - 1][1]) {
        throw new Error(`${f.name}: buckets not cumulative`);
      }
    }
    const last = g.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`${f.name}: no +Inf bucket`);
    if (g.count === undefined || g.sum === undefined) {
      throw new Error(`${f.name}: missing _count or _sum`);
    }
    if (last[1] !== g.count) {
      throw new Error(`${f.name}: +Inf bucket ${last[1]} != _count ${g.count}`);
    }
  }
}

function sample(
  fams: Map<string, Family>,
  family: string,
  name: string,
  labels: Record<string, string>,
) {
  const f = fams.get(family);
  assert.ok(f, `family ${family} missing`);
  const s = f.samples.find((x) =>
    x.name === name && JSON.stringify(x.labels) === JSON.stringify(labels)
  );
  assert.ok(s, `sample ${name}${JSON.stringify(labels)} missing`);
  return s.value;
}

Deno.test("createRelayMetrics() renders parseable text with the updated values", () => {
  const m = createRelayMetrics({ version: "1.2.3" });
  m.smtpSessions.inc({ listener: "smtp" });
  m.smtpSessions.inc({ listener: "smtp" });
  m.smtpResults.inc({ listener: "submission", class: "5xx", reason: "encryption_needed" });
  m.imapConnections.inc({ listener: "imaps" }, 3);
  m.imapConnections.dec({ listener: "imaps" });
  m.imapIdleSessions.set(7);
  m.deliveries.inc({ target: "local", outcome: "delivered" }, 4);
  m.deliveryLatency.observe(0.003, { target: "local" });
  m.deliveryLatency.observe(0.2, { target: "local" });
  m.deliveryLatency.observe(1000, { target: "remote" });
  m.queueLength.set(12);
  m.pushSent.inc();
  const fams = parseExposition(m.render());
  assert.equal(fams.get("tern_smtp_sessions_total")?.type, "counter");
  assert.equal(
    sample(fams, "tern_smtp_sessions_total", "tern_smtp_sessions_total", { listener: "smtp" }),
    2,
  );
  assert.equal(
    sample(fams, "tern_smtp_results_total", "tern_smtp_results_total", {
      listener: "submission",
      class: "5xx",
      reason: "encryption_needed",
    }),
    1,
  );
  assert.equal(
    sample(fams, "tern_imap_connections", "tern_imap_connections", { listener: "imaps" }),
    2,
  );
  assert.equal(sample(fams, "tern_imap_idle_sessions", "tern_imap_idle_sessions", {}), 7);
  assert.equal(sample(fams, "tern_queue_length", "tern_queue_length", {}), 12);
  assert.equal(sample(fams, "tern_push_sent_total", "tern_push_sent_total", {}), 1);
  assert.equal(sample(fams, "tern_push_failed_total", "tern_push_failed_total", {}), 0);
  assert.equal(sample(fams, "tern_build_info", "tern_build_info", { version: "1.2.3" }), 1);
  const h = "tern_delivery_latency_seconds";
  assert.equal(fams.get(h)?.type, "histogram");
  assert.equal(sample(fams, h, `${h}_bucket`, { target: "local", le: "0.005" }), 1);
  assert.equal(sample(fams, h, `${h}_bucket`, { target: "local", le: "0.25" }), 2);
  assert.equal(sample(fams, h, `${h}_bucket`, { target: "local", le: "+Inf" }), 2);
  assert.equal(sample(fams, h, `${h}_count`, { target: "local" }), 2);
  assert.equal(sample(fams, h, `${h}_bucket`, { target: "remote", le: "300" }), 0);
  assert.equal(sample(fams, h, `${h}_bucket`, { target: "remote", le: "+Inf" }), 1);
  assert.equal(sample(fams, h, `${h}_sum`, { target: "remote" }), 1000);
  assert.equal(m.ratesLastMinute().delivered, 4);
});

Deno.test("MetricsRegistry escapes label values and HELP text", () => {
  const r = new MetricsRegistry();
  const nasty = 'a\\b"c\nd';
  r.counter("x_total", "help with \\ and\nnewline", ["path"]).inc({ path: nasty });
  const text = r.render();
  assert.ok(text.includes('x_total{path="a\\\\b\\"c\\nd"} 1'), text);
  const fams = parseExposition(text);
  assert.equal(fams.get("x_total")!.samples[0].labels.path, nasty);
  assert.equal(fams.get("x_total")!.help, "help with \\ and\nnewline");
});

Deno.test("MetricsRegistry rejects wrong labels, negative increments and duplicate names", () => {
  const r = new MetricsRegistry();
  const c = r.counter("y_total", "y", ["a"]);
  assert.throws(() => c.inc(), /expected labels \[a\]/);
  assert.throws(() => c.inc({ a: "1", b: "2" } as unknown as { a: string }), /expected labels/);
  assert.throws(() => c.inc({ a: "1" }, -1), /non-negative/);
  assert.throws(() => r.gauge("y_total", "again"), /already registered/);
  assert.throws(() => r.gauge("bad-name", "x"), /invalid name/);
  assert.throws(() => r.histogram("h", "x", [], ["le"]), /invalid label name "le"/);
});

Deno.test("parseExposition() rejects text that breaks the format rules", () => {
  const bad = [
    "x 1\n", // sample without TYPE
    "# TYPE x counter\nx 1\n# HELP x late\n", // HELP after samples
    '# TYPE x counter\nx{a="1} 1\n', // unterminated label
    "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n", // family not contiguous
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // not cumulative
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', // +Inf != count
    "# TYPE x gauge\nx one\n", // bad value
  ];
  for (const t of bad) assert.throws(() => parseExposition(t), Error, JSON.stringify(t));
});

Deno.test("MinuteSeries counts the last 60 seconds and keeps per-minute history", () => {
  let now = 10 * 60_000;
  const s = new MinuteSeries({ now: () => now, historyMinutes: 5 });
  s.add();
  s.add(2);
  now += 30_000;
  s.add();
  assert.equal(s.lastMinute(), 4);
  now += 45_000; // the first three are now 75 s old
  assert.equal(s.lastMinute(), 1);
  const h = s.history(3);
  assert.deepEqual(h.map((p) => p.count), [0, 4, 0]);
  assert.equal(h[2].minute, 11 * 60_000);
  now += 10 * 60_000; // the ring wrapped: old slots must not reappear
  assert.deepEqual(s.history(5).map((p) => p.count), [0, 0, 0, 0, 0]);
  assert.equal(s.lastMinute(), 0);
});
