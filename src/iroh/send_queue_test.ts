import assert from "node:assert/strict";
import { ByteBudget, SendQueue } from "./send_queue.ts";
import { pingFrame, recvPacketFrame } from "./frames.ts";

const key = new Uint8Array(32);
const packet = (n: number) => recvPacketFrame(key, new Uint8Array(n));

Deno.test("SendQueue refuses frames past a lane's frame or byte bound", () => {
  const q = new SendQueue({
    control: { frames: 1, bytes: 100 },
    disco: { frames: 10, bytes: 100 },
    data: { frames: 2, bytes: 1000 },
  });
  assert.equal(q.push(packet(10), "data"), true);
  assert.equal(q.push(packet(10), "data"), true);
  assert.equal(q.push(packet(10), "data"), false, "frame bound");
  assert.equal(q.push(packet(60), "disco"), true);
  assert.equal(q.push(packet(60), "disco"), false, "byte bound (32 + 60 each)");
  assert.equal(q.push(pingFrame(new Uint8Array(8)), "control"), true);
  assert.equal(q.push(pingFrame(new Uint8Array(8)), "control"), false);
  assert.equal(q.size, 4);
});

Deno.test("SendQueue batches control, then disco, then data, within the byte budget", () => {
  const q = new SendQueue();
  q.push(packet(100), "data");
  q.push(packet(200), "data");
  q.push(packet(5), "disco");
  q.push(pingFrame(new Uint8Array(8)), "control");
  const first = q.take(8 + 37 + 132);
  assert.deepEqual(first.frames.map((f) => f.length), [8, 37, 132]);
  assert.equal(first.packets, 2);
  assert.equal(first.packetBytes, 105);
  // A frame larger than the budget still goes out alone.
  const second = q.take(10);
  assert.deepEqual(second.frames.map((f) => f.length), [232]);
  assert.equal(q.take(10).frames.length, 0);
});

Deno.test("SendQueue.wait() wakes on a push and on close; closed queues refuse frames", async () => {
  const q = new SendQueue();
  const waiting = q.wait();
  q.push(packet(1), "data");
  await waiting;
  q.take(1 << 20);
  const again = q.wait();
  q.close();
  await again;
  assert.equal(q.push(packet(1), "data"), false);
});

Deno.test("SendQueue shares a byte budget with other queues and gives it back", () => {
  const budget = new ByteBudget(110);
  const a = new SendQueue(undefined, budget);
  const b = new SendQueue(undefined, budget);
  assert.equal(a.push(packet(40), "data"), true); // 72 bytes with the key
  assert.equal(b.push(packet(40), "data"), false, "over the shared budget");
  assert.equal(b.push(packet(0), "disco"), true);
  assert.equal(budget.used, 72 + 32);
  a.take(1 << 20);
  assert.equal(budget.used, 32);
  b.clear();
  assert.equal(budget.used, 0);
});
