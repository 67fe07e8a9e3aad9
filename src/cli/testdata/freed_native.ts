// For runtime_env_test.ts: leaves tens of MB of freed, fragmented native memory (the backing
// stores of many 20 KB arrays, a few small ones kept between them), as compiling a large script
// without its code cache does, then prints RSS (KiB) before and after releaseStartupGarbage().

import { releaseStartupGarbage } from "../runtime_env.ts";
import { collectGarbage } from "../../gc.ts";

const rssKib = () => Math.round(Deno.memoryUsage().rss / 1024);
const kept: Uint8Array[] = [];
let garbage: Uint8Array[] = [];
for (let i = 0; i < 4000; i++) {
  garbage.push(new Uint8Array(20_000).fill(1));
  if (i % 50 === 0) kept.push(new Uint8Array(64).fill(2));
}
garbage = [];
// The collection frees the arrays' native memory; glibc keeps it, so RSS stays.
collectGarbage();
const before = rssKib();
releaseStartupGarbage();
console.log(
  JSON.stringify({ before, after: rssKib(), kept: kept.length, dropped: garbage.length }),
);
