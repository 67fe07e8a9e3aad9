import assert from "node:assert/strict";
import { advertisedRelayUrl, certificateNames, servesRelay } from "./advertised_url.ts";
import type { RelaySources } from "./advertised_url.ts";

const base: RelaySources = {
  enabled: true,
  configured: null,
  host: "chat.example.org",
  https: { port: 443, trusted: true, names: ["chat.example.org"] },
  http: { port: 80 },
};
const https = (port: number, trusted: boolean, names = ["chat.example.org"]) => ({
  port,
  trusted,
  names,
});

Deno.test("advertisedRelayUrl() names the embedded relay as it can be reached", () => {
  assert.equal(advertisedRelayUrl(base), "https://chat.example.org");
  assert.equal(
    advertisedRelayUrl({ ...base, https: https(8443, true) }),
    "https://chat.example.org:8443",
  );
  // A self-signed certificate never passes iroh's web PKI check: plain HTTP then.
  assert.equal(
    advertisedRelayUrl({ ...base, https: https(443, false) }),
    "http://chat.example.org",
  );
  assert.equal(
    advertisedRelayUrl({
      ...base,
      host: "192.0.2.1",
      https: https(8443, false, ["192.0.2.1"]),
      http: { port: 8080 },
    }),
    "http://192.0.2.1:8080",
  );
  assert.equal(advertisedRelayUrl({ ...base, https: null }), "http://chat.example.org");
  assert.equal(
    advertisedRelayUrl({ ...base, https: https(443, false), http: null }),
    null,
  );
  assert.equal(advertisedRelayUrl({ ...base, https: null, http: null }), null);
});

Deno.test("advertisedRelayUrl() offers HTTPS only under a name the certificate holds", () => {
  const other = https(443, true, ["mx.example.org"]);
  assert.equal(advertisedRelayUrl({ ...base, https: other }), "http://chat.example.org");
  assert.equal(
    advertisedRelayUrl({ ...base, altHost: "mx.example.org", https: other }),
    "https://mx.example.org",
  );
  assert.equal(
    advertisedRelayUrl({ ...base, https: https(443, true, ["*.example.org"]) }),
    "https://chat.example.org",
  );
});

Deno.test("certificateNames() matches exactly or one wildcard label deep", () => {
  assert.equal(certificateNames("Chat.Example.org", "chat.example.org"), true);
  assert.equal(certificateNames("*.example.org", "chat.example.org"), true);
  assert.equal(certificateNames("*.example.org", "a.chat.example.org"), false);
  assert.equal(certificateNames("*.example.org", "example.org"), false);
  assert.equal(certificateNames("192.0.2.1", "192.0.2.1"), true);
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
