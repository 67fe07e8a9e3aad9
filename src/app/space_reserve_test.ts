import assert from "node:assert/strict";
import { reserveGuardedStore, SpaceReserve } from "./space_reserve.ts";
import type { Store } from "../store/types.ts";

const FULL = () => new Error("database or disk is full");

/** A store whose setFlags fails once with a full disk, recording the calls that reach it. */
function fakeStore(calls: string[]) {
  let full = true;
  return {
    marker: "kept",
    setFlags() {
      calls.push("setFlags");
      if (full) {
        full = false;
        return Promise.reject(FULL());
      }
      return Promise.resolve({ updated: [] });
    },
    expunge() {
      calls.push("expunge");
      return Promise.reject(new Error("no such mailbox"));
    },
    deliver() {
      calls.push("deliver");
      return Promise.resolve({});
    },
    getAccount() {
      return Promise.resolve(null);
    },
  } as unknown as Store & { marker: string };
}

Deno.test("a full disk releases the reserve for a space-freeing write, and adding waits for room", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const reserve = new SpaceReserve(`${dir}/reserve`, 64 * 1024);
    await reserve.init();
    assert.equal(reserve.state, "held");
    assert.equal((await Deno.stat(`${dir}/reserve`)).size, 64 * 1024);
    const calls: string[] = [];
    const store = reserveGuardedStore(fakeStore(calls), reserve);
    assert.equal(store.marker, "kept");
    assert.equal(await store.getAccount("x"), null);
    // The write that hit the full disk is retried once the reserve is gone.
    await store.setFlags(1, { uids: [1], mode: "add", flags: ["\\Deleted"] });
    assert.deepEqual(calls, ["setFlags", "setFlags"]);
    assert.equal(reserve.state, "released");
    await assert.rejects(Deno.stat(`${dir}/reserve`), Deno.errors.NotFound);
    // Other errors are not a reason to release anything.
    await assert.rejects(store.expunge(1), /no such mailbox/);
    // This disk has room again: the reserve is taken back before mail is added.
    await store.deliver({} as never);
    assert.equal(reserve.state, "held");
    assert.equal((await Deno.stat(`${dir}/reserve`)).size, 64 * 1024);
    assert.deepEqual(calls, ["setFlags", "setFlags", "expunge", "deliver"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without a reserve, a full disk fails the write", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const reserve = new SpaceReserve(`${dir}/reserve`, 0);
    await reserve.init();
    assert.equal(reserve.state, "absent");
    const calls: string[] = [];
    const store = reserveGuardedStore(fakeStore(calls), reserve);
    await assert.rejects(store.setFlags(1, { uids: [1], mode: "add", flags: [] }), /disk is full/);
    await store.deliver({} as never);
    assert.deepEqual(calls, ["setFlags", "deliver"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
