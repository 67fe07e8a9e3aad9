import assert from "node:assert/strict";
import { isIpLiteral, renewalTime, retryDelay } from "./manager.ts";

const DAY = 86_400_000;

Deno.test("renewalTime: 30 days before expiry, or a third of a short lifetime", () => {
  const from = new Date("2026-01-01T00:00:00Z");
  const to90 = new Date(from.getTime() + 90 * DAY);
  assert.equal(renewalTime(from, to90), to90.getTime() - 30 * DAY);
  const to6 = new Date(from.getTime() + 6 * DAY);
  assert.equal(renewalTime(from, to6), to6.getTime() - 2 * DAY);
  assert.equal(renewalTime(from, to90, 10), to90.getTime() - 10 * DAY);
});

Deno.test("retryDelay doubles from the minimum up to the maximum", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 100].map((n) => retryDelay(n, 60_000, 600_000)),
    [60_000, 120_000, 240_000, 480_000, 600_000, 600_000, 600_000],
  );
});

Deno.test("isIpLiteral recognises IPv4, bracketed and IPv6 literals", () => {
  assert.ok(isIpLiteral("192.0.2.1"));
  assert.ok(isIpLiteral("[192.0.2.1]"));
  assert.ok(isIpLiteral("2001:db8::1"));
  assert.ok(!isIpLiteral("tern.test"));
});
