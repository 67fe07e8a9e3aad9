import { strict as assert } from "node:assert";
import { type CpuProfile, summarize, summarizeProfiles } from "./profile.ts";

const frame = (functionName: string, url = "", lineNumber = 0) => ({
  functionName,
  url,
  lineNumber,
  columnNumber: 0,
});

// root → deliver (src/a.ts) → parse (src/b.ts) → deliver again (recursion) ; root → (idle)
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)"), children: [2, 5] },
    { id: 2, callFrame: frame("deliver", "file:///x/src/a.ts", 9), children: [3] },
    {
      id: 3,
      callFrame: frame("parse", "file:///x/node_modules/.deno/p@1/node_modules/p/b.js"),
      children: [4],
    },
    { id: 4, callFrame: frame("deliver", "file:///x/src/a.ts", 9) },
    { id: 5, callFrame: frame("(idle)") },
  ],
  startTime: 0,
  endTime: 100_000,
  // each sample lasts until the next: 10 ms per sample here
  samples: [2, 3, 3, 4, 5, 5, 5, 5, 5, 5],
  timeDeltas: [0, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000],
};

Deno.test("profile: self, inclusive (recursion counted once) and per-file time", () => {
  const s = summarize(profile);
  assert.equal(s.totalMs, 100);
  assert.equal(s.busyMs, 40);
  const self = Object.fromEntries(s.self.map((x) => [x.name, x.ms]));
  assert.equal(self["(idle)"], undefined); // idle is not work: only in totalMs − busyMs
  assert.equal(self["deliver file:///x/src/a.ts:10"], 20);
  assert.equal(self["parse npm:p/b.js:1"], 20);
  const incl = Object.fromEntries(s.inclusive.map((x) => [x.name, x.ms]));
  assert.equal(incl["deliver file:///x/src/a.ts:10"], 40);
  assert.equal(incl["parse npm:p/b.js:1"], 30);
  assert.equal(incl["(idle)"], undefined);
  const files = Object.fromEntries(s.files.map((x) => [x.file, x.ms]));
  assert.equal(files["file:///x/src/a.ts"], 20);
  assert.equal(files["npm:p/b.js"], 20);
});

Deno.test("profile: every .cpuprofile of a directory, busiest thread first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-prof-" });
  try {
    await Deno.writeTextFile(`${dir}/CPU.1.cpuprofile`, JSON.stringify(profile));
    const idle = { ...profile, samples: profile.samples.map(() => 5) };
    await Deno.writeTextFile(`${dir}/CPU.1.worker-1.cpuprofile`, JSON.stringify(idle));
    const text = await summarizeProfiles(dir);
    assert.ok(text.indexOf("CPU.1.cpuprofile") < text.indexOf("worker-1"));
    assert.match(text, /0\.1 s sampled, 0\.0 s busy/);
    assert.match(text, /50\.0% +20 ms {2}deliver file:\/\/\/x\/src\/a\.ts:10/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
