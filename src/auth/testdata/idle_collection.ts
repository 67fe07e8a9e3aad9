// Run by password_pool_test.ts with --expose-gc (as the relay runs): a pool of two workers gets
// a burst of jobs; prints its stats once the workers have been idle a while, twice, 500 ms apart,
// and the same after a second burst, as JSON lines.

import { ScryptPool } from "../password_pool.ts";
import { job } from "./scrypt_job.ts";

const pool = new ScryptPool(2, { idleMs: 60_000, collectMs: 100 });
const burst = (n: number) =>
  Promise.all(Array.from({ length: n }, (_, i) => pool.run(job(`${i}`))));
/** Waits until every worker has collected since `before`, then prints the stats twice, 500 ms apart. */
const settle = async (before: number) => {
  const deadline = Date.now() + 30_000;
  while (pool.stats().collections < before + pool.stats().workers && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const first = pool.stats();
  // Idle for five times collectMs: no further collection may come.
  await new Promise((r) => setTimeout(r, 500));
  console.log(JSON.stringify([first, pool.stats()]));
};
await burst(20);
await settle(0);
await burst(20);
await settle(pool.stats().collections);
pool.close();
