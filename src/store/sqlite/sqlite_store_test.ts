import assert from "node:assert/strict";
import { runStoreContract } from "../store_contract.ts";
import { MIGRATIONS, openSqliteStore } from "./mod.ts";
import { tempStore } from "./testdata/temp_store.ts";

runStoreContract("SqliteStore :memory:", () => openSqliteStore(":memory:"));
runStoreContract("SqliteStore in-process", () => tempStore(false));
runStoreContract("SqliteStore threaded", () => tempStore(true));

Deno.test("openSqliteStore() migrates a fresh file once and re-opens it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s1 = openSqliteStore(`${dir}/t.db`);
    await s1.createAccount({ address: "a@x", passwordHash: "h", now: 1 });
    await s1.close();
    const s2 = openSqliteStore(`${dir}/t.db`);
    assert.ok(await s2.getAccount("a@x"));
    assert.equal(s2.db.all("SELECT * FROM schema_migrations").length, MIGRATIONS.length);
    await s2.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSqliteStore() refuses a database whose applied migration was edited", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await openSqliteStore(`${dir}/t.db`).close();
    const tampered = MIGRATIONS.map((m, i) => i === 0 ? { ...m, sql: m.sql + "\n-- edited" } : m);
    assert.throws(
      () => openSqliteStore(`${dir}/t.db`, { migrations: tampered }),
      /migration 0001_init\.sql was changed after it was applied/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSqliteStore() refuses a database written by a newer tern", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const extra = [...MIGRATIONS, {
      version: 999,
      name: "0999_future.sql",
      sql: "CREATE TABLE f (x)",
    }];
    await openSqliteStore(`${dir}/t.db`, { migrations: extra }).close();
    assert.throws(() => openSqliteStore(`${dir}/t.db`), /0999_future\.sql, which this version/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
