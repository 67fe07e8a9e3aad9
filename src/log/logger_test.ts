import assert from "node:assert/strict";
import { createLogger } from "./logger.ts";

Deno.test("createLogger() in No-Log mode writes only operational lines", () => {
  const lines: string[] = [];
  const log = createLogger("off", { write: (l) => lines.push(l) });
  log.info("login", { user: "alice@example.org" });
  log.debug("trace");
  log.warn("odd", { user: "alice@example.org" });
  log.system("listening on 127.0.0.1:25");
  assert.deepEqual(lines, ["tern: listening on 127.0.0.1:25"]);
});

Deno.test("createLogger() writes structured JSON lines with child fields", () => {
  const lines: string[] = [];
  const log = createLogger("info", { write: (l) => lines.push(l), now: () => new Date(0) }).child({
    cid: "c1",
  });
  log.info("hello", { proto: "smtp" });
  log.debug("hidden");
  assert.equal(lines.length, 1);
  assert.deepEqual(JSON.parse(lines[0]), {
    ts: "1970-01-01T00:00:00.000Z",
    level: "info",
    msg: "hello",
    cid: "c1",
    proto: "smtp",
  });
});
