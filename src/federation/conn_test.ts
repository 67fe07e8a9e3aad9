// Outbound connections (the SMTP and HTTPS clients' sockets) count as activity for the quiet
// collector (src/quiet_collector.ts): a relay busy only delivering to other relays is not quiet.

import assert from "node:assert/strict";
import * as net from "node:net";
import { activityCount } from "../net/mod.ts";
import { Conn, connectTcp } from "./conn.ts";

Deno.test("an outbound connection, what it sends and what it receives are activity", async () => {
  // A plain node:net peer (not tern's listener, which counts its own side): answers each line.
  const peer = net.createServer((s) => {
    s.on("error", () => {});
    s.on("data", () => s.write("250 OK\r\n"));
  });
  await new Promise<void>((r) => peer.listen(0, "127.0.0.1", () => r()));
  const port = (peer.address() as net.AddressInfo).port;
  let socket: net.Socket | null = null;
  try {
    let before = activityCount();
    socket = await connectTcp("127.0.0.1", port, 30_000);
    assert.notEqual(activityCount(), before, "connecting is activity");
    const conn = new Conn(socket, `127.0.0.1:${port}`);
    before = activityCount();
    await conn.write("NOOP\r\n", 30_000, "NOOP");
    assert.notEqual(activityCount(), before, "sending is activity");
    before = activityCount();
    assert.equal(await conn.readLine(30_000, "reply"), "250 OK");
    assert.notEqual(activityCount(), before, "receiving is activity");
  } finally {
    socket?.destroy();
    await new Promise((r) => peer.close(r));
  }
});
