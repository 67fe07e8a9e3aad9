import assert from "node:assert/strict";
import { FETCH_RETRY_MS, httpsPolicyFetcher, MtaSts, mxMatches, parsePolicy } from "./mta_sts.ts";
import type { DnsResolver } from "./resolver.ts";

Deno.test("parsePolicy() reads RFC 8461 policies and refuses broken ones", () => {
  assert.deepEqual(
    parsePolicy(
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmx: *.example.net\r\nmax_age: 86400\r\n",
    ),
    { mode: "enforce", mx: ["mail.example.org", "*.example.net"], maxAgeSeconds: 86400 },
  );
  assert.equal(parsePolicy("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1"), null);
  assert.equal(parsePolicy("version: STSv1\nmode: enforce\nmax_age: 1"), null);
  assert.equal(parsePolicy("version: STSv1\nmode: sometimes\nmx: a\nmax_age: 1"), null);
});

Deno.test("mxMatches() follows the wildcard rule of RFC 8461 §4.1", () => {
  assert.ok(mxMatches("mail.example.org.", ["mail.example.org"]));
  assert.ok(mxMatches("mx1.example.net", ["*.example.net"]));
  assert.ok(!mxMatches("a.mx1.example.net", ["*.example.net"]));
  assert.ok(!mxMatches("example.net", ["*.example.net"]));
});

/**
 * example.org publishing MTA-STS with TXT id `state.id`; its policy host fails while `state.fail`,
 * else serves `policy(fetches so far)`; the clock is `state.now`.
 */
function stsFixture(policy: (fetches: number) => string, fail: boolean) {
  const state = { id: "1", fetches: 0, fail, now: 0 };
  const dns: DnsResolver = {
    mx: () => Promise.resolve([]),
    addresses: () => Promise.resolve([]),
    txt: (n) => Promise.resolve(n === "_mta-sts.example.org" ? [`v=STSv1; id=${state.id}`] : []),
  };
  const sts = new MtaSts(dns, () => {
    state.fetches++;
    return state.fail ? Promise.reject(new Error("down")) : Promise.resolve(policy(state.fetches));
  }, () => state.now);
  return { state, sts };
}

Deno.test("MtaSts caches by TXT id and keeps a policy when fetching fails", async () => {
  const { state, sts } = stsFixture(
    (n) => `version: STSv1\nmode: enforce\nmx: mx${n}.example.org\nmax_age: 100\n`,
    false,
  );
  assert.deepEqual((await sts.policy("example.org"))!.mx, ["mx1.example.org"]);
  assert.deepEqual((await sts.policy("example.org"))!.mx, ["mx1.example.org"]);
  assert.equal(state.fetches, 1);
  state.id = "2";
  assert.deepEqual((await sts.policy("example.org"))!.mx, ["mx2.example.org"]);
  state.fail = true;
  state.id = "3";
  assert.deepEqual((await sts.policy("example.org"))!.mx, ["mx2.example.org"], "kept on failure");
  assert.equal(await sts.policy("nopolicy.example"), null);
  // max_age (100 s) and the wait after the failed fetch (FETCH_RETRY_MS) are over: fetched again.
  state.now = FETCH_RETRY_MS + 1;
  state.fail = false;
  assert.deepEqual((await sts.policy("example.org"))!.mx, ["mx4.example.org"]);
});

Deno.test("MtaSts: a policy host that fails is not asked again for a while, unless the TXT id changes", async () => {
  const { state, sts } = stsFixture(
    () => "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n",
    true,
  );
  assert.equal(await sts.policy("example.org"), null);
  assert.equal(state.fetches, 1);
  // Each delivery attempt would otherwise wait out the fetch's deadline again.
  state.now = FETCH_RETRY_MS - 1;
  assert.equal(await sts.policy("example.org"), null);
  assert.equal(state.fetches, 1);
  // A new policy announced: asked at once.
  state.id = "2";
  state.fail = false;
  assert.deepEqual((await sts.policy("example.org"))!.mx, ["mx.example.org"]);
  assert.equal(state.fetches, 2);
  // The same after the wait, for a policy that could not be read either.
  state.id = "3";
  state.fail = true;
  assert.deepEqual((await sts.policy("example.org"))!.mx, ["mx.example.org"], "kept on failure");
  assert.equal(state.fetches, 3);
  state.now += FETCH_RETRY_MS;
  state.fail = false;
  assert.deepEqual((await sts.policy("example.org"))!.mx, ["mx.example.org"]);
  assert.equal(state.fetches, 4);
});

Deno.test("httpsPolicyFetcher() does not connect to a policy host at non-public addresses", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      conn.close();
    }
  })();
  const dns: DnsResolver = {
    mx: () => Promise.resolve([]),
    addresses: () => Promise.resolve(["127.0.0.1", "::ffff:127.0.0.1", "10.0.0.5"]),
    txt: () => Promise.resolve([]),
  };
  try {
    const fetchPolicy = httpsPolicyFetcher(dns, { port: () => listener.addr.port });
    await assert.rejects(
      fetchPolicy("example.org"),
      /mta-sts\.example\.org has no public address: 127\.0\.0\.1, ::ffff:127\.0\.0\.1, 10\.0\.0\.5/,
    );
    assert.equal(accepted, 0);
  } finally {
    listener.close();
    await serving;
  }
});
