import assert from "node:assert/strict";
import { advertisedRelayUrl, servesRelay } from "./advertised_url.ts";
import type { RelaySources } from "./advertised_url.ts";

const base: RelaySources = {
  enabled: true,
  configured: null,
  host: "chat.example.org",
  https: { port: 443, trusted: true },
  http: { port: 80 },
};

Deno.test("advertisedRelayUrl() names the embedded relay as it can be reached", () => {
  assert.equal(advertisedRelayUrl(base), "https://chat.example.org");
  assert.equal(
    advertisedRelayUrl({ ...base, https: { port: 8443, trusted: true } }),
    "https://chat.example.org:8443",
  );
  // A self-signed certificate never passes iroh's web PKI check: plain HTTP then.
  assert.equal(
    advertisedRelayUrl({ ...base, https: { port: 443, trusted: false } }),
    "http://chat.example.org",
  );
  assert.equal(
    advertisedRelayUrl({
      ...base,
      host: "192.0.2.1",
      https: { port: 8443, trusted: false },
      http: { port: 8080 },
    }),
    "http://192.0.2.1:8080",
  );
  assert.equal(advertisedRelayUrl({ ...base, https: null }), "http://chat.example.org");
  assert.equal(
    advertisedRelayUrl({ ...base, https: { port: 443, trusted: false }, http: null }),
    null,
  );
  assert.equal(advertisedRelayUrl({ ...base, https: null, http: null }), null);
});

Deno.test("advertisedRelayUrl() follows iroh_enabled and iroh_relay", () => {
  assert.equal(advertisedRelayUrl({ ...base, enabled: false }), null);
  assert.equal(
    advertisedRelayUrl({ ...base, configured: "https://relay.example.net" }),
    "https://relay.example.net",
  );
  assert.equal(
    advertisedRelayUrl({ ...base, enabled: false, configured: "https://relay.example.net" }),
    null,
  );
  assert.equal(advertisedRelayUrl({ ...base, configured: "" }), null);
  assert.equal(servesRelay(base), true);
  assert.equal(servesRelay({ enabled: false, configured: null }), false);
  assert.equal(servesRelay({ enabled: true, configured: "https://relay.example.net" }), false);
});
