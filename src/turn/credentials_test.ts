import assert from "node:assert/strict";
import {
  longTermKey,
  turnCredentials,
  turnKeyFor,
  turnMetadataValue,
  turnPassword,
  usernameExpiry,
} from "./credentials.ts";

const hexOf = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

// Expected values computed independently with openssl:
//   printf 1700432000 | openssl dgst -sha1 -hmac north -binary | base64
//   printf '1700432000:example.org:<that>' | md5sum
Deno.test("turnPassword is base64(HMAC-SHA1(secret, username))", () => {
  assert.equal(turnPassword("north", "1700432000"), "6i3MOC5CcUjtk51HuMCT6nsg1eU=");
});

Deno.test("turnCredentials: username is the expiry timestamp, 5 days by default", () => {
  const now = 1_700_000_000_000;
  assert.deepEqual(turnCredentials("north", now), {
    username: "1700432000",
    password: "6i3MOC5CcUjtk51HuMCT6nsg1eU=",
  });
  assert.equal(turnCredentials("north", now + 999, 60).username, "1700000060");
  assert.equal(
    turnMetadataValue("chat.example.org", 3478, "north", now),
    "chat.example.org:3478:1700432000:6i3MOC5CcUjtk51HuMCT6nsg1eU=",
  );
});

Deno.test("long-term key is MD5(username:realm:password)", () => {
  assert.equal(
    hexOf(longTermKey("1700432000", "example.org", "6i3MOC5CcUjtk51HuMCT6nsg1eU=")),
    "2911d75f2343beff8bd5acd1fe8b17d7",
  );
  assert.equal(
    hexOf(turnKeyFor("north", "1700432000", "example.org", 1_700_000_000_000)!),
    "2911d75f2343beff8bd5acd1fe8b17d7",
  );
});

Deno.test("turnKeyFor refuses expired, malformed usernames and an empty secret", () => {
  const exp = 1_700_000_000;
  assert.ok(turnKeyFor("s", String(exp), "r", exp * 1000));
  assert.equal(turnKeyFor("s", String(exp), "r", exp * 1000 + 1), null);
  assert.ok(turnKeyFor("s", `${exp}:alice`, "r", exp * 1000 - 5));
  for (const bad of ["", "alice", "-1", "1e10", " 1700000000", "17000000000000000"]) {
    assert.equal(turnKeyFor("s", bad, "r", 0), null, bad);
  }
  assert.equal(turnKeyFor("", String(exp), "r", 0), null);
  assert.equal(usernameExpiry("1700000000:x:y"), 1700000000);
  assert.equal(usernameExpiry("x1700000000"), null);
});
