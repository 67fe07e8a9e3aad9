// Generated bad input against the parsers that face the network: the IMAP command parser, the
// SMTP DATA reader, the MIME parser, the encryption gate and the config loader. None may crash,
// hang or answer with anything but its documented error.

import assert from "node:assert/strict";
import fc from "fast-check";
import { ImapSyntaxError, parseCommand } from "../src/imap/parser.ts";
import { readData } from "../src/smtp/data_reader.ts";
import { parseMessage } from "../src/mime/mod.ts";
import { checkIncoming, checkOutgoing } from "../src/policy/mod.ts";
import { ConfigError, loadConfig } from "../src/config/mod.ts";

const RUNS = Number(Deno.env.get("TERN_FUZZ_RUNS") ?? 20_000);
const enc = new TextEncoder();

const imapish = fc.oneof(
  fc.string(),
  fc.array(
    fc.constantFrom(
      "a1 ",
      "UID ",
      "FETCH ",
      "STORE ",
      "SEARCH ",
      "SELECT ",
      "APPEND ",
      "GETMETADATA ",
      "SETMETADATA ",
      "LIST ",
      "1:*",
      "*",
      ",",
      "(",
      ")",
      "[",
      "]",
      "<",
      ">",
      '"',
      "\\",
      "BODY.PEEK[HEADER.FIELDS (From)]",
      "(CHANGEDSINCE 5 VANISHED)",
      "OR ",
      "NOT ",
      "&Jjo-",
      "&",
      "{5}",
      " ",
      "INBOX",
      "NIL",
      "\u00e4",
    ),
    { maxLength: 30 },
  ).map((a) => a.join("")),
);

Deno.test("IMAP parser: any input gives a command or an ImapSyntaxError", () => {
  fc.assert(
    fc.property(
      imapish,
      fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 2 }),
      (line, lits) => {
        const segments: (string | Uint8Array)[] = [line];
        for (const l of lits) segments.push(l, "");
        try {
          const cmd = parseCommand({ segments });
          assert.ok(typeof cmd.name === "string");
        } catch (e) {
          if (!(e instanceof ImapSyntaxError)) throw e;
          assert.ok(e.message.length > 0);
        }
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("SMTP DATA reader: any byte stream ends, unstuffed, never beyond the terminator", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.constantFrom(
            enc.encode("\r\n.\r\n"),
            enc.encode("\n.\n"),
            enc.encode("\r\n..\r\n"),
            enc.encode("\r"),
            enc.encode("\n"),
            enc.encode("."),
          ),
        ),
        { maxLength: 20 },
      ),
      async (chunks) => {
        const queue = [...chunks, enc.encode("\r\n.\r\nNEXT")];
        let rest: Uint8Array | null = null;
        const source = {
          readChunk: () => Promise.resolve(queue.shift() ?? null),
          unread: (b: Uint8Array) => {
            rest = b;
          },
        };
        let kept = 0;
        let overflowed = false;
        const r = await readData(source, { maxBytes: 500, maxLineBytes: 100 }, {
          write: (b) => {
            assert.ok(!overflowed, "nothing is written after the overflow");
            kept += b.length;
            return Promise.resolve();
          },
          overflow: () => {
            overflowed = true;
            return Promise.resolve();
          },
        });
        assert.ok(r !== null, "the final terminator always ends the data");
        assert.equal(r.tooLarge, overflowed);
        if (!r.tooLarge) assert.equal(r.size, kept);
        assert.ok(kept <= 500);
        // Whatever follows the first valid terminator is left for the next command.
        if (rest) assert.ok((rest as Uint8Array).length > 0);
      },
    ),
    { numRuns: Math.min(RUNS, 5000) },
  );
});

Deno.test("MIME parser and encryption gate: any bytes give a verdict, never an exception", () => {
  const header = fc.constantFrom(
    "Content-Type: multipart/encrypted; boundary=b\r\n",
    'Content-Type: multipart/mixed; boundary="b"\r\n',
    "Content-Type: message/rfc822\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "From: <a@b.example>\r\n",
    "From: =?utf-8?b?!!!?= <\r\n",
    "Secure-Join: vc-request\r\n",
    "\r\n",
    "--b\r\n",
    "--b--\r\n",
    "-----BEGIN PGP MESSAGE-----\r\n",
    "-----END PGP MESSAGE-----\r\n",
    "Version: 1\r\n",
  );
  fc.assert(
    fc.property(
      fc.array(fc.oneof(header, fc.string({ maxLength: 40 })), { maxLength: 40 }),
      (parts) => {
        const bytes = enc.encode(parts.join(""));
        const root = parseMessage(bytes);
        assert.ok(root.end <= bytes.length);
        const input = { mailFrom: "a@b.example", recipients: ["c@d.example"], message: bytes };
        for (const v of [checkOutgoing(input), checkIncoming(input)]) {
          assert.equal(typeof v.accept, "boolean");
        }
      },
    ),
    { numRuns: Math.min(RUNS, 10_000) },
  );
});

Deno.test("config loader: any TOML gives a config or a ConfigError naming the problem", () => {
  const value = fc.oneof(
    fc.integer(),
    fc.string({ maxLength: 10 }).map((s) => JSON.stringify(s)),
    fc.constantFrom("true", "[1, 2]", '"30M"', '"-1"', "{ a = 1 }", "1e999"),
  );
  const key = fc.constantFrom(
    "domain",
    "max_message_size",
    "max_recipients",
    "log",
    "listen.smtp",
    "nonsense",
    "username_min_length",
    "turn_port",
  );
  fc.assert(
    fc.property(
      fc.array(fc.tuple(key, value), { maxLength: 6 }),
      fc.string({ maxLength: 20 }),
      (kvs, junk) => {
        const text = kvs.map(([k, v]) => `${k.replace("listen.", "listen.")} = ${v}`).join("\n") +
          (junk ? `\n${junk}` : "");
        try {
          loadConfig({ fileText: text, fileName: "fuzz.toml" });
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          assert.ok(e.message.length > 0);
        }
      },
    ),
    { numRuns: Math.min(RUNS, 5000) },
  );
});
