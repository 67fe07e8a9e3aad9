import assert from "node:assert/strict";
import { route } from "./router.ts";
import { DnsError, type DnsResolver } from "./resolver.ts";

function dns(tables: {
  mx?: Record<string, { preference: number; exchange: string }[] | Error>;
  addresses?: Record<string, string[] | Error>;
}): DnsResolver {
  const answer = <T>(v: T | Error | undefined, empty: T) =>
    v instanceof Error ? Promise.reject(v) : Promise.resolve(v ?? empty);
  return {
    mx: (d) => answer(tables.mx?.[d], []),
    addresses: (h) => answer(tables.addresses?.[h], []),
    txt: () => Promise.resolve([]),
  };
}

Deno.test("route() sends an IP literal to its address, certificates unchecked", async () => {
  assert.deepEqual(await route("[192.0.2.7]", dns({})), {
    ok: true,
    destinations: [{ host: "192.0.2.7", addresses: ["192.0.2.7"], insecureTls: true }],
  });
  assert.deepEqual(await route("[IPv6:2001:db8::1]", dns({})), {
    ok: true,
    destinations: [{ host: "2001:db8::1", addresses: ["2001:db8::1"], insecureTls: true }],
  });
});

Deno.test("route() orders MX hosts by preference and skips hosts without an address", async () => {
  const r = await route(
    "b.test",
    dns({
      mx: {
        "b.test": [
          { preference: 20, exchange: "mx2.b.test" },
          { preference: 10, exchange: "mx1.b.test" },
          { preference: 30, exchange: "gone.b.test" },
        ],
      },
      addresses: { "mx1.b.test": ["192.0.2.1"], "mx2.b.test": ["2001:db8::2", "192.0.2.2"] },
    }),
  );
  assert.deepEqual(r, {
    ok: true,
    destinations: [
      { host: "mx1.b.test", addresses: ["192.0.2.1"], insecureTls: false },
      { host: "mx2.b.test", addresses: ["2001:db8::2", "192.0.2.2"], insecureTls: false },
    ],
  });
});

Deno.test("route() uses the domain itself without MX (RFC 5321 §5.1)", async () => {
  const tables = { addresses: { "b.test": ["192.0.2.9"] } };
  for (const mx of [undefined, new DnsError("no data", "nodata")]) {
    const r = await route("b.test", dns({ ...tables, mx: mx ? { "b.test": mx } : {} }));
    assert.deepEqual(r, {
      ok: true,
      destinations: [{ host: "b.test", addresses: ["192.0.2.9"], insecureTls: false }],
    });
  }
});

Deno.test("route() fails permanently for a null MX and a domain that does not exist", async () => {
  assert.deepEqual(
    await route("b.test", dns({ mx: { "b.test": [{ preference: 0, exchange: "." }] } })),
    { ok: false, permanent: true, reason: "Domain b.test does not accept mail (null MX)" },
  );
  assert.deepEqual(
    await route("b.test", dns({ mx: { "b.test": new DnsError("gone", "nxdomain") } })),
    { ok: false, permanent: true, reason: "Domain b.test does not exist" },
  );
});

Deno.test("route() defers on DNS trouble and when no host has an address", async () => {
  const r1 = await route(
    "b.test",
    dns({ mx: { "b.test": new DnsError("SERVFAIL", "temporary") } }),
  );
  assert.deepEqual(r1, {
    ok: false,
    permanent: false,
    reason: "DNS lookup of b.test failed: SERVFAIL",
  });
  const r2 = await route(
    "b.test",
    dns({
      mx: { "b.test": [{ preference: 10, exchange: "mx.b.test" }] },
      addresses: { "mx.b.test": new Error("timeout") },
    }),
  );
  assert.equal(r2.ok, false);
  assert.ok(!r2.ok && !r2.permanent && /mx\.b\.test: timeout/.test(r2.reason));
});

Deno.test('route() accepts any certificate for "_" domains, as the reference relay', async () => {
  const r = await route("_b.test", dns({ addresses: { "_b.test": ["192.0.2.5"] } }));
  assert.ok(r.ok && r.destinations[0].insecureTls);
});

Deno.test("route() looks up a bounded number of MX hosts: a domain with thousands cannot hold a delivery", async () => {
  // Each lookup may take a DNS timeout (3 tries of 2 s): thousands of them, one after another,
  // would hold the delivery (and the relay's shutdown) for hours.
  const mx = Array.from({ length: 3000 }, (_, i) => ({ preference: i, exchange: `mx${i}.b.test` }));
  let lookups = 0;
  const r = await route("b.test", {
    mx: () => Promise.resolve(mx),
    addresses: (h) => {
      lookups++;
      return h === "mx0.b.test" ? Promise.resolve(["192.0.2.1"]) : Promise.resolve([]);
    },
    txt: () => Promise.resolve([]),
  });
  assert.ok(r.ok && r.destinations[0].host === "mx0.b.test");
  assert.ok(lookups <= 10, `${lookups} address lookups`);
});
