// Envelope address syntax as RCPT judges it.

import assert from "node:assert/strict";
import { isValidAddress } from "./service.ts";

Deno.test("address literals must hold a real address: four octets up to 255, or IPv6", () => {
  for (
    const ok of [
      "bob@[192.0.2.1]",
      "bob@[255.255.255.255]",
      "bob@[IPv6:2001:db8::1]",
      "bob@[ipv6:::1]",
      "bob@[IPv6:::ffff:192.0.2.1]",
      "bob@example.org",
    ]
  ) assert.ok(isValidAddress(ok), ok);
  for (
    const bad of [
      "bob@[999.1.1.1]",
      "bob@[192.0.2.256]",
      "bob@[1.2.3]",
      "bob@[1.2.3.4.5]",
      "bob@[IPv6:2001:db8:::1]",
      "bob@[IPv6:12345::1]",
      "bob@[IPv6:1.2.3.4]",
      "bob@[]",
    ]
  ) assert.ok(!isValidAddress(bad), bad);
});
