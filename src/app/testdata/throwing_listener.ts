// A listener whose connection handler throws in every way an error can escape a handler, run
// under the process guard (process_guard_test.ts). Prints "port N" once listening, then one
// "escaped: …" line per error the guard caught; answers "pong" to every connection.

import { EventEmitter } from "node:events";
import { listen } from "../../net/mod.ts";
import { describeEscaped, installProcessGuard } from "../process_guard.ts";

installProcessGuard((kind, err) =>
  console.log(`escaped: ${kind}: ${describeEscaped(err).split("\n")[0]}`)
);

const l = await listen({
  address: "127.0.0.1:0",
  mode: "plain",
  async onConnection(conn) {
    // Escapes a handler: a throw in a timer, a rejection nobody awaits, an 'error' event without
    // a listener; then the handler itself throws.
    setTimeout(() => {
      throw new Error("thrown in a timer");
    }, 0);
    Promise.reject(new Error("rejected and never awaited"));
    setTimeout(() => new EventEmitter().emit("error", new Error("emitted without a listener")), 0);
    await conn.write("pong\r\n");
    throw new Error("thrown by the handler");
  },
  onError(err) {
    console.log(`handler failed: ${(err as Error).message}`);
  },
});
console.log(`port ${l.port}`);
