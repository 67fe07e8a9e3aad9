import assert from "node:assert/strict";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import {
  type Connection,
  ConnectionClosedError,
  LineTooLongError,
  SocketConnection,
} from "../net/connection.ts";
import {
  type CommandConnection,
  CONTINUE_LITERAL,
  LiteralTooLargeError,
  readCommand,
  type ReadLimits,
  tagOf,
} from "./command_reader.ts";
import { BufferConnection } from "./testing_conn.ts";

const LIMITS: ReadLimits = { maxLineBytes: 200, maxLiteralBytes: 100, maxAppendLiteralBytes: 1000 };
const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);

const cases: {
  name: string;
  input: string;
  segments: (string | Uint8Array)[];
  writes: string[];
}[] = [
  { name: "plain line", input: "a1 NOOP\r\n", segments: ["a1 NOOP"], writes: [] },
  { name: "bare LF", input: "a1 NOOP\n", segments: ["a1 NOOP"], writes: [] },
  { name: "blank lines skipped", input: "\r\n\r\na1 NOOP\r\n", segments: ["a1 NOOP"], writes: [] },
  {
    name: "synchronizing literal",
    input: "a1 LOGIN {3}\r\nbob {4}\r\npass\r\n",
    segments: ["a1 LOGIN ", b("bob"), " ", b("pass"), ""],
    writes: [CONTINUE_LITERAL, CONTINUE_LITERAL],
  },
  {
    name: "non-synchronizing literal (LITERAL+)",
    input: "a1 LOGIN {3+}\r\nbob pass\r\n",
    segments: ["a1 LOGIN ", b("bob"), " pass"],
    writes: [],
  },
  {
    name: "literal8",
    input: "a1 APPEND INBOX ~{5+}\r\nab\0cd\r\n",
    segments: ["a1 APPEND INBOX ", b("ab\0cd"), ""],
    writes: [],
  },
  {
    name: "literal holding CRLF and braces",
    input: "a1 APPEND INBOX {10+}\r\nx\r\n{3}\r\nyy\r\n",
    segments: ["a1 APPEND INBOX ", b("x\r\n{3}\r\nyy"), ""],
    writes: [],
  },
  {
    name: "zero-length sync literal still gets a continuation",
    input: "a1 LOGIN {0}\r\n pass\r\n",
    segments: ["a1 LOGIN ", b(""), " pass"],
    writes: [CONTINUE_LITERAL],
  },
];

for (const keepLineEnd of [true, false]) {
  for (const c of cases) {
    Deno.test(`readCommand: ${c.name}${keepLineEnd ? "" : " (line end stripped)"}`, async () => {
      const conn = new BufferConnection(c.input + "a2 NOOP\r\n", keepLineEnd);
      const raw = await readCommand(conn, LIMITS);
      assert.deepEqual(raw, { segments: c.segments });
      assert.deepEqual(conn.writes, c.writes);
      assert.deepEqual(await readCommand(conn, LIMITS), { segments: ["a2 NOOP"] });
      assert.equal(await readCommand(conn, LIMITS), null);
    });
  }
}

Deno.test("readCommand: too large synchronizing literal is refused unread", async () => {
  const conn = new BufferConnection("a7 LOGIN {101}\r\n");
  await assert.rejects(readCommand(conn, LIMITS), (e) => {
    assert.ok(e instanceof LiteralTooLargeError);
    assert.equal(e.tag, "a7");
    assert.equal(e.size, 101);
    assert.equal(e.limit, 100);
    assert.equal(e.synchronizing, true);
    return true;
  });
  assert.deepEqual(conn.writes, []);
});

Deno.test("readCommand: APPEND uses the append limit, also after UID", async () => {
  const body = "x".repeat(500);
  const conn = new BufferConnection(`A1 append INBOX {500+}\r\n${body}\r\n`);
  const raw = await readCommand(conn, LIMITS);
  assert.equal((raw!.segments[1] as Uint8Array).length, 500);
  const big = new BufferConnection(`A1 APPEND INBOX {1001}\r\n`);
  await assert.rejects(readCommand(big, LIMITS), LiteralTooLargeError);
  const uid = new BufferConnection(`A1 UID APPEND INBOX {500}\r\n${body}\r\n`);
  assert.ok(await readCommand(uid, LIMITS));
});

Deno.test("readCommand: too large non-synchronizing literal is drained in chunks", async () => {
  const size = 300_000;
  const input = `t1 APPEND INBOX {${size}+}\r\n${"z".repeat(size)} {5+}\r\nhello\r\nt2 NOOP\r\n`;
  const conn = new BufferConnection(input);
  const limits = { ...LIMITS, maxAppendLiteralBytes: 1000 };
  await assert.rejects(readCommand(conn, limits), (e) => {
    assert.ok(e instanceof LiteralTooLargeError);
    assert.equal(e.tag, "t1");
    assert.equal(e.synchronizing, false);
    return true;
  });
  assert.ok(conn.largestRead <= 64 * 1024, `read ${conn.largestRead} bytes at once`);
  assert.deepEqual(conn.writes, []);
  // The stream is in sync: the next command reads cleanly.
  assert.deepEqual(await readCommand(conn, limits), { segments: ["t2 NOOP"] });
});

Deno.test("readCommand: draining stops at a following synchronizing literal", async () => {
  const conn = new BufferConnection(`t1 X {200+}\r\n${"a".repeat(200)} {3}\r\n`);
  await assert.rejects(readCommand(conn, LIMITS), LiteralTooLargeError);
  assert.equal(conn.rest(), "");
  assert.deepEqual(conn.writes, []);
});

Deno.test("readCommand: total command size is bounded", async () => {
  const lit = "q".repeat(90);
  const many = Array.from({ length: 5 }, () => `{90+}\r\n${lit} `).join("");
  const conn = new BufferConnection(`a1 SEARCH TEXT ${many}ALL\r\na2 NOOP\r\n`);
  await assert.rejects(readCommand(conn, { ...LIMITS, maxCommandBytes: 300 }), (e) => {
    assert.ok(e instanceof LiteralTooLargeError);
    assert.equal(e.limit, 300);
    return true;
  });
  assert.deepEqual(await readCommand(conn, LIMITS), { segments: ["a2 NOOP"] });
});

Deno.test("readCommand: stream ending inside a command", async () => {
  await assert.rejects(
    readCommand(new BufferConnection("a1 LOGIN {3}\r\nb"), LIMITS),
    ConnectionClosedError,
  );
  await assert.rejects(
    readCommand(new BufferConnection("a1 LOGIN {3+}\r\nbob"), LIMITS),
    ConnectionClosedError,
  );
});

Deno.test("readCommand: overlong line surfaces LineTooLongError", async () => {
  await assert.rejects(
    readCommand(new BufferConnection(`a1 ${"x".repeat(300)}\r\n`), LIMITS),
    LineTooLongError,
  );
});

Deno.test("tagOf", () => {
  assert.equal(tagOf("a1 NOOP"), "a1");
  assert.equal(tagOf("a]1 NOOP"), "a]1");
  assert.equal(tagOf("+1 NOOP"), null);
  assert.equal(tagOf("a(1 NOOP"), null);
  assert.equal(tagOf("NOOP"), null);
});

// The reader's interface is what net's real Connection offers.
const _compatible = (c: Connection): CommandConnection => c;

Deno.test("readCommand over a real SocketConnection stays in sync after draining", async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  const client = connect(port, "127.0.0.1");
  const conn = new SocketConnection(await accepted);
  try {
    const big = "b".repeat(200_000);
    client.write(`a1 APPEND INBOX {200000+}\r\n${big}\r\na2 LOGIN {3}\r\n`);
    await assert.rejects(readCommand(conn, LIMITS), LiteralTooLargeError);
    const next = readCommand(conn, LIMITS);
    const got = new Promise<string>((resolve) => client.once("data", (d) => resolve(String(d))));
    assert.equal(await got, CONTINUE_LITERAL);
    client.write("bob pw\r\n");
    assert.deepEqual(await next, { segments: ["a2 LOGIN ", b("bob"), " pw"] });
  } finally {
    client.destroy();
    conn.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A sink recording each piece it was given, and the arguments it was offered with. */
function recordingSink() {
  const offers: { size: number; binary: boolean }[] = [];
  const pieces: Uint8Array[] = [];
  const offer = (size: number, binary: boolean) => {
    offers.push({ size, binary });
    return {
      write(chunk: Uint8Array) {
        pieces.push(chunk.slice());
        return Promise.resolve();
      },
    };
  };
  const text = () => new TextDecoder().decode(concat(pieces));
  return { offers, pieces, offer, text };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("readCommand: APPEND's message literal streams into the sink in chunks, never whole", async () => {
  const message = "Subject: hi\r\n\r\n" + "0123456789".repeat(250);
  const conn = new BufferConnection(
    `a1 APPEND INBOX (\\Seen) {${message.length}}\r\n${message}\r\na2 NOOP\r\n`,
  );
  conn.chunkSize = 700;
  const sink = recordingSink();
  const raw = await readCommand(conn, { ...LIMITS, maxAppendLiteralBytes: 10_000 }, sink.offer);
  assert.deepEqual(sink.offers, [{ size: message.length, binary: false }]);
  assert.equal(sink.text(), message);
  assert.ok(sink.pieces.length >= 4 && sink.pieces.every((p) => p.length <= 700));
  assert.deepEqual(raw!.segments, ["a1 APPEND INBOX (\\Seen) ", new Uint8Array(0), ""]);
  assert.ok(raw!.streamed);
  assert.deepEqual(conn.writes, [CONTINUE_LITERAL]);
  // The rest of the last chunk was put back: the next command is intact.
  assert.deepEqual(await readCommand(conn, LIMITS, sink.offer), { segments: ["a2 NOOP"] });
  assert.equal(sink.offers.length, 1, "NOOP has no literal to stream");
});

Deno.test("readCommand: a literal mailbox name is read, the message after it streams; literal8 says so", async () => {
  const conn = new BufferConnection("a1 APPEND {5+}\r\nINBOX UTF8 (~{7+}\r\nab\0cdef)\r\n");
  const sink = recordingSink();
  const raw = await readCommand(conn, LIMITS, sink.offer);
  assert.deepEqual(sink.offers, [{ size: 7, binary: true }]);
  assert.equal(sink.text(), "ab\0cdef");
  assert.deepEqual(raw!.segments, ["a1 APPEND ", b("INBOX"), " UTF8 (", new Uint8Array(0), ")"]);
  const login = new BufferConnection("a1 LOGIN {3+}\r\nbob {4+}\r\npass\r\n");
  assert.deepEqual(await readCommand(login, LIMITS, sink.offer), {
    segments: ["a1 LOGIN ", b("bob"), " ", b("pass"), ""],
  });
  assert.equal(sink.offers.length, 1, "only APPEND's message is offered");
  // Declining the offer reads the literal as before.
  const held = await readCommand(
    new BufferConnection("a1 APPEND INBOX {3+}\r\nabc\r\n"),
    LIMITS,
    () => undefined,
  );
  assert.deepEqual(held, { segments: ["a1 APPEND INBOX ", b("abc"), ""] });
});

Deno.test("readCommand: the command total leaves out APPEND's streamed message, and counts every literal held", async () => {
  const limits = { ...LIMITS, maxCommandBytes: 300 };
  const message = "m".repeat(900);
  const sink = recordingSink();
  const conn = new BufferConnection(`a1 APPEND INBOX {900+}\r\n${message}\r\n`);
  assert.ok((await readCommand(conn, limits, sink.offer))!.streamed);
  assert.equal(sink.text(), message);
  // Declined (a second message, say), the literal would be held: refused unread, by the total.
  const held = new BufferConnection(`a2 APPEND INBOX {900}\r\n`);
  await assert.rejects(readCommand(held, limits, () => undefined), (e) => {
    assert.ok(e instanceof LiteralTooLargeError);
    assert.equal(e.limit, 300);
    return true;
  });
  assert.deepEqual(held.writes, []);
  // A mailbox name literal is held too.
  const name = new BufferConnection(`a3 APPEND {900}\r\n`);
  await assert.rejects(readCommand(name, limits, sink.offer), LiteralTooLargeError);
  assert.equal(sink.offers.length, 1);
});

Deno.test("readCommand: a streamed literal cut off by the peer ends in ConnectionClosedError", async () => {
  const sink = recordingSink();
  await assert.rejects(
    readCommand(new BufferConnection("a1 APPEND INBOX {900+}\r\nonly this"), LIMITS, sink.offer),
    ConnectionClosedError,
  );
  assert.equal(sink.text(), "only this");
});
