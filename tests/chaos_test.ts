// Disconnect chaos (issue 16): clients of every listener (25, 25 with STARTTLS, 587, 465, 143,
// 993 with and without COMPRESS, HTTPS /new and /mxdeliv) vanish at random points — during the
// TLS handshake, at the greeting, mid-command, mid-literal, mid-DATA, mid-FETCH of a 20 MB
// message, inside IDLE — with FIN, close or RST, many at once, against a real `tern serve`.
// Meanwhile a well-behaved client must be served throughout. Afterwards: the process is up, every
// message that got 250/OK/200 is stored exactly once and none cut before its end is stored, no
// socket or spool file is left, memory is back near its baseline, and nothing was printed.
//
//   CHAOS_SEED=1234 CHAOS_CYCLES=5000 ./scripts/deno test -A tests/chaos_test.ts
//   CHAOS_ONLY="993 append,https" …   (only the scenarios whose names contain one of these)

import assert from "node:assert/strict";
import { startTern } from "./support/tern_process.ts";
import { seedFrom } from "./support/prng.ts";
import { CHAOS_TOML, chaosRun, leftoverFiles, summary } from "./support/chaos_run.ts";
import { mib } from "./support/proc_status.ts";

const CYCLES = Number(Deno.env.get("CHAOS_CYCLES") ?? 2000);
const CONCURRENCY = Number(Deno.env.get("CHAOS_CONCURRENCY") ?? 16);
/** RSS after the cycles and a settle may exceed the warmed-up baseline by this much. */
const RSS_GROWTH_LIMIT = 100 * 1048576;

Deno.test({
  name: "disconnect chaos on every listener: the relay stays up, serves others, loses nothing",
  // The relay is a child process whose pipes are read for the whole test (stopped in finally).
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const seed = seedFrom("CHAOS_SEED");
    console.log(`chaos: seed ${seed} (replay with CHAOS_SEED=${seed}), ${CYCLES} cycles`);
    const dir = await Deno.makeTempDir({ prefix: "tern-chaos-" });
    const tern = await startTern(CHAOS_TOML, { log: "off", dir });
    let stopped = false;
    try {
      const only = Deno.env.get("CHAOS_ONLY")?.split(",");
      const r = await chaosRun(tern, {
        only,
        seed,
        cycles: CYCLES,
        concurrency: CONCURRENCY,
        warmup: 100,
      });
      if (r.died) {
        await tern.stop(); // collects the rest of its stderr
        stopped = true;
        assert.fail(`the relay process died (seed ${seed}):\n${tern.stderr().slice(-5000)}`);
      }
      console.log(summary(r));
      const failures = [...r.warmup.failures, ...r.result.failures];
      assert.deepEqual(failures, [], `seed ${seed}:\n${failures.join("\n")}`);
      assert.equal(
        r.bystander.error,
        null,
        `the bystander was not served: ${r.bystander.error?.message}`,
      );
      assert.ok(
        r.bystander.imapCommands > 0 && r.bystander.submissions > 0,
        "the bystander worked",
      );
      assert.ok(
        r.sockets.after <= r.sockets.base,
        `sockets left open: ${r.sockets.after} (baseline ${r.sockets.base}):\n${
          r.leftover.join("\n")
        }`,
      );
      assert.ok(
        r.rss.after - r.rss.base < RSS_GROWTH_LIMIT,
        `RSS grew by ${mib(r.rss.after - r.rss.base)} MiB`,
      );
      assert.deepEqual(
        r.ledger.problems.slice(0, 20),
        [],
        `${r.ledger.problems.length} ledger problems`,
      );
      assert.equal(r.printed, "", `with log off nothing is printed:\n${r.printed.slice(0, 3000)}`);
      await tern.stop();
      stopped = true;
      assert.deepEqual(await leftoverFiles(tern.dataDir), [], "spool or body files left behind");
    } finally {
      if (!stopped) await tern.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
