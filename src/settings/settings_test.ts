// Run-time settings on a real (in-memory) SQLite store: validation of every kind, persistence
// across a reload, the bus event on change, and reset to the default.

import assert from "node:assert/strict";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import { EventBus, type RelayEvent } from "../events/mod.ts";
import { isRelayError } from "../errors.ts";
import { SETTINGS, SettingsService, validateSetting } from "./settings.ts";

async function setup() {
  const store = openSqliteStore(":memory:");
  const bus = new EventBus();
  const events: RelayEvent[] = [];
  bus.subscribeAll((e) => events.push(e));
  const settings = new SettingsService({ store, bus });
  await settings.load();
  return { store, bus, events, settings, [Symbol.dispose]: () => store.close() };
}

const invalid = (pattern: RegExp) => (e: unknown) =>
  isRelayError(e) && e.code === "invalid_argument" && pattern.test(e.message);

Deno.test("defaults before anything is stored; typed readers", async () => {
  using t = await setup();
  assert.equal(t.settings.get("registration"), "open");
  assert.equal(t.settings.bool("jit_enabled"), true);
  assert.equal(t.settings.bool("push_enabled"), true);
  assert.deepEqual(t.settings.list("federation_allowlist"), []);
  assert.deepEqual(
    t.settings.all().map((s) => s.key),
    Object.keys(SETTINGS),
  );
  for (const s of t.settings.all()) {
    assert.equal(s.value, s.default);
    assert.ok(s.doc.length > 10, s.key);
  }
});

Deno.test("booleans: true/false, on/off, yes/no, 1/0 in any case; anything else is refused", () => {
  for (
    const [given, want] of [["TRUE", "true"], ["off", "false"], [" yes ", "true"], ["0", "false"]]
  ) {
    assert.equal(validateSetting("push_enabled", given), want, given);
  }
  assert.throws(
    () => validateSetting("push_enabled", "maybe"),
    invalid(/"push_enabled": expected true or false, got "maybe"/),
  );
});

Deno.test("enums take only their values; strings are trimmed; unknown keys name the known ones", () => {
  assert.equal(validateSetting("registration", " token "), "token");
  assert.throws(
    () => validateSetting("registration", "Open"),
    invalid(/expected one of open, closed, token, got "Open"/),
  );
  assert.equal(validateSetting("admin_contact", "  ops@example.org "), "ops@example.org");
  assert.throws(
    () => validateSetting("registraton", "open"),
    invalid(/Unknown setting "registraton"; known: registration, jit_enabled/),
  );
});

Deno.test("federation_allowlist takes what its documentation says: commas, spaces, line breaks", () => {
  const doc = SETTINGS.federation_allowlist.doc;
  assert.match(doc, /commas, spaces or line breaks/);
  assert.equal(
    validateSetting("federation_allowlist", "A.example, b.example\nc.example  d.example,,\n"),
    "a.example,b.example,c.example,d.example",
  );
  assert.equal(validateSetting("federation_allowlist", " \n, "), "");
  // What PUT /federation refuses, the settings (PUT /settings/federation_allowlist, the CLI) too.
  for (const bad of ["../x", "c\u0000", "*.example.org", "https://example.org", "a@b.example"]) {
    assert.throws(
      () => validateSetting("federation_allowlist", `ok.example, ${bad}`),
      invalid(/Invalid value for "federation_allowlist": not a domain/),
      bad,
    );
  }
  assert.equal(
    validateSetting("federation_allowlist", "[192.0.2.1] _x.example"),
    "[192.0.2.1],_x.example",
  );
});

Deno.test("set() validates, stores, announces and returns the value; a reload sees it", async () => {
  using t = await setup();
  assert.equal(await t.settings.set("registration", "closed"), "closed");
  assert.equal(
    await t.settings.set("federation_allowlist", "x.example y.example"),
    "x.example,y.example",
  );
  assert.deepEqual(t.settings.list("federation_allowlist"), ["x.example", "y.example"]);
  assert.deepEqual(t.events, [
    { type: "settings.changed", key: "registration" },
    { type: "settings.changed", key: "federation_allowlist" },
  ]);
  // Another process (the CLI) wrote the store: load() picks it up.
  const other = new SettingsService({ store: t.store });
  await other.load();
  assert.equal(other.get("registration"), "closed");
  await other.set("registration", "token");
  await t.settings.load();
  assert.equal(t.settings.get("registration"), "token");
});

Deno.test("a refused value changes nothing and announces nothing; null resets to the default", async () => {
  using t = await setup();
  await t.settings.set("turn_enabled", "false");
  t.events.length = 0;
  await assert.rejects(t.settings.set("turn_enabled", "nope"), invalid(/expected true or false/));
  await assert.rejects(t.settings.set("no_such_key", "1"), invalid(/Unknown setting/));
  assert.equal(t.settings.get("turn_enabled"), "false");
  assert.equal(await t.store.getSetting("turn_enabled"), "false");
  assert.deepEqual(t.events, []);
  assert.equal(await t.settings.set("turn_enabled", null), "true");
  assert.equal(await t.store.getSetting("turn_enabled"), null);
  assert.deepEqual(t.events, [{ type: "settings.changed", key: "turn_enabled" }]);
});
