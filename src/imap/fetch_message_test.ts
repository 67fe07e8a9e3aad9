// FETCH rendered from a stored body read in ranges (with its structure blob, or parsed once when
// it has none) must give exactly the bytes the whole-message renderer gives.

import assert from "node:assert/strict";
import { encodeStructure, parseMessage, withTopHeader } from "../mime/mod.ts";
import type { MessageRecord } from "../store/types.ts";
import {
  binarySection,
  concatPieces,
  type Piece,
  renderBodyStructure,
  renderEnvelope,
  sectionBytes,
  UNKNOWN_CTE,
} from "./fetch_render.ts";
import { FetchSource, renderFetchItem, writeFetch } from "./fetch_message.ts";
import type { ImapMailboxes, StoredBody } from "./backend.ts";
import type { SessionContext } from "./session.ts";
import type { FetchItem, Section } from "./types.ts";

const enc = new TextEncoder();

const MESSAGES: Record<string, string> = {
  nested: [
    "From: a@example.org",
    "Subject: nested",
    'Content-Type: multipart/mixed; boundary="outer"',
    "",
    "preamble",
    "--outer",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Hello =C3=A9 soft=",
    " break  ",
    "--outer",
    "Content-Type: message/rfc822",
    "",
    "From: c@example.org",
    "Subject: inner",
    "Content-Type: multipart/mixed; boundary=inner",
    "",
    "--inner",
    "Content-Type: text/plain",
    "",
    "inner text",
    "--inner",
    "Content-Transfer-Encoding: base64",
    "",
    "aW5uZXIg",
    "bmVlZGxl!",
    "--inner--",
    "--outer",
    "Content-Type: application/x-thing",
    "Content-Transfer-Encoding: x-uuencode",
    "",
    "begin 644",
    "--outer--",
    "",
  ].join("\r\n"),
  big: "From: b@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
    "Content-Transfer-Encoding: base64\r\n\r\n" +
    btoa("x".repeat(300_000).split("").map((_, i) => String.fromCharCode(i % 256)).join(""))
      .replace(/.{76}/g, "$&\r\n") +
    "\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + "line of text\r\n".repeat(20_000) + "--b--\r\n",
  plain: "Subject: no body",
};

const sec = (part: number[], specifier: Section["specifier"] = "", fields?: string[]) => ({
  part,
  specifier,
  ...(fields ? { fields } : {}),
});

function items(): FetchItem[] {
  const out: FetchItem[] = [
    { kind: "ENVELOPE" },
    { kind: "BODYSTRUCTURE" },
    { kind: "BODY" },
    { kind: "RFC822" },
    { kind: "RFC822.HEADER" },
    { kind: "RFC822.TEXT" },
  ];
  const sections = [
    sec([]),
    sec([], "HEADER"),
    sec([], "TEXT"),
    sec([], "HEADER.FIELDS", ["SUBJECT", "FROM"]),
    sec([], "HEADER.FIELDS.NOT", ["SUBJECT"]),
    sec([1]),
    sec([1], "MIME"),
    sec([2]),
    sec([2], "HEADER"),
    sec([2], "TEXT"),
    sec([2, 2]),
    sec([2, 2], "MIME"),
    sec([3]),
    sec([9]),
  ];
  for (const section of sections) {
    for (const partial of [undefined, { offset: 0, length: 10 }, { offset: 5, length: 1e9 }]) {
      out.push({ kind: "BODY[]", peek: true, section, partial, label: "BODY[x]" });
    }
  }
  for (const part of [[], [1], [2], [2, 2], [1, 1], [3], [9]]) {
    for (const partial of [undefined, { offset: 3, length: 7 }, { offset: 1e9, length: 2 }]) {
      out.push({ kind: "BINARY", peek: true, part, partial, label: "BINARY[x]" });
    }
    out.push({ kind: "BINARY.SIZE", part, label: "BINARY.SIZE[x]" });
  }
  return out;
}

/** What FETCH sent before bodies streamed: every item from the whole message in memory. */
function reference(item: FetchItem, bytes: Uint8Array): Piece[] | "UNKNOWN-CTE" {
  const root = parseMessage(bytes);
  const lit = (
    b: Uint8Array | null,
    prefix: string,
    partial?: { offset: number; length: number },
  ) => {
    let d = b ?? new Uint8Array();
    if (partial) {
      const s = Math.min(Math.max(0, partial.offset), d.length);
      d = d.subarray(s, Math.min(d.length, s + partial.length));
    }
    return [`${prefix}{${d.length}}\r\n`, d];
  };
  switch (item.kind) {
    case "ENVELOPE":
      return ["ENVELOPE ", ...renderEnvelope(root, bytes)];
    case "BODYSTRUCTURE":
      return ["BODYSTRUCTURE ", ...renderBodyStructure(root, bytes, true)];
    case "BODY":
      return ["BODY ", ...renderBodyStructure(root, bytes, false)];
    case "RFC822":
      return lit(bytes, "RFC822 ");
    case "RFC822.HEADER":
      return lit(sectionBytes(bytes, root, sec([], "HEADER")), "RFC822.HEADER ");
    case "RFC822.TEXT":
      return lit(sectionBytes(bytes, root, sec([], "TEXT")), "RFC822.TEXT ");
    case "BODY[]":
      return lit(sectionBytes(bytes, root, item.section), `${item.label} `, item.partial);
    case "BINARY": {
      const d = binarySection(bytes, root, item.part);
      if (d === UNKNOWN_CTE) return "UNKNOWN-CTE";
      const [head, data] = lit(d, "", item.partial) as [string, Uint8Array];
      return [`${item.label} ~${head}`, data];
    }
    case "BINARY.SIZE": {
      const d = binarySection(bytes, root, item.part);
      if (d === UNKNOWN_CTE) return "UNKNOWN-CTE";
      return [`${item.label} ${d ? d.length : 0}`];
    }
    default:
      throw new Error("not rendered here");
  }
}

/** A stored body read in small ranges, counting its reads. */
function storedBody(bytes: Uint8Array, structure: Uint8Array | null) {
  const body = {
    size: bytes.length,
    structure,
    reads: 0,
    largest: 0,
    read(offset: number, length: number) {
      body.reads++;
      body.largest = Math.max(body.largest, length);
      return Promise.resolve(bytes.slice(offset, offset + length));
    },
    close: () => Promise.resolve(),
  };
  return body;
}

function fakeSession() {
  const out: Uint8Array[] = [];
  let pending: Piece[] = [];
  let flushes = 0;
  let writes = 0;
  const ctx = {
    out(p: Piece) {
      pending.push(p);
    },
    flush() {
      flushes++;
      out.push(concatPieces(pending));
      pending = [];
      return Promise.resolve();
    },
    conn: {
      write(b: Uint8Array) {
        assert.equal(pending.length, 0, "the session's queue goes out first");
        writes++;
        out.push(b.slice());
        return Promise.resolve();
      },
    },
  } as unknown as SessionContext;
  return {
    ctx,
    bytes: async () => {
      await ctx.flush();
      return concatPieces(out);
    },
    flushes: () => flushes,
    writes: () => writes,
  };
}

function mailboxes(kept: Map<number, Uint8Array>): ImapMailboxes {
  return {
    setBodyStructure(id: number, blob: Uint8Array) {
      kept.set(id, blob);
      return Promise.resolve();
    },
  } as unknown as ImapMailboxes;
}

const REC: MessageRecord = {
  mailboxId: 1,
  uid: 7,
  modSeq: 3,
  flags: [],
  internalDate: 0,
  size: 0,
  bodyId: 42,
};

async function rendered(item: FetchItem, src: FetchSource): Promise<Uint8Array | "UNKNOWN-CTE"> {
  const s = fakeSession();
  try {
    await writeFetch(s.ctx, await renderFetchItem(item, REC, src, []), src);
  } catch (e) {
    if ((e as { code?: string }).code === "UNKNOWN-CTE") return "UNKNOWN-CTE";
    throw e;
  }
  return await s.bytes();
}

for (const [name, text] of Object.entries(MESSAGES)) {
  Deno.test(`FETCH from ranged reads equals the whole-message renderer: ${name}`, async () => {
    const bytes = enc.encode(text);
    const blob = encodeStructure(parseMessage(bytes));
    const kept = new Map<number, Uint8Array>();
    for (const item of items()) {
      const want = reference(item, bytes);
      const wantBytes = want === "UNKNOWN-CTE" ? want : concatPieces(want);
      const sources = [
        new FetchSource(42, bytes.length, bytes, blob, null, mailboxes(kept)),
        new FetchSource(42, bytes.length, null, blob, storedBody(bytes, blob), mailboxes(kept)),
        // A body stored before structures were kept: parsed from ranges, then its blob is kept.
        new FetchSource(42, bytes.length, null, null, storedBody(bytes, null), mailboxes(kept)),
      ];
      for (const [i, src] of sources.entries()) {
        assert.deepEqual(await rendered(item, src), wantBytes, `${item.kind} source ${i}`);
      }
    }
    assert.deepEqual(kept.get(42), blob, "the parsed structure was kept");
  });
}

Deno.test("FETCH BODY[] of a large body reads and writes it a slice at a time", async () => {
  const bytes = enc.encode(MESSAGES.big);
  const body = storedBody(bytes, null);
  const src = new FetchSource(
    1,
    bytes.length,
    null,
    null,
    body as StoredBody,
    mailboxes(new Map()),
  );
  const s = fakeSession();
  const item: FetchItem = { kind: "BODY[]", peek: true, section: sec([]), label: "BODY[]" };
  await writeFetch(s.ctx, await renderFetchItem(item, REC, src, []), src);
  assert.ok(body.largest <= 128 * 1024);
  assert.ok(s.writes() >= bytes.length / (128 * 1024), "every slice was written and awaited");
  const out = await s.bytes();
  assert.deepEqual(out.subarray(out.length - bytes.length), bytes);
});

Deno.test("FETCH structure of a delivered message: the gate's tree with the rewritten head on top", async () => {
  const original = enc.encode(
    MESSAGES.nested.replace("Subject: nested", "Received: from x\r\nSubject: nested"),
  );
  // The stored message: the header without Received over the original bytes after its header.
  const tree = parseMessage(original);
  const fullHead = enc.encode(
    new TextDecoder().decode(original.subarray(0, tree.headerEnd)).replace(
      "Received: from x\r\n",
      "",
    ),
  );
  const stored = new Uint8Array([...fullHead, ...original.subarray(tree.headerEnd)]);
  const blob = encodeStructure(withTopHeader(tree, fullHead));
  const src = new FetchSource(
    1,
    stored.length,
    null,
    blob,
    storedBody(stored, blob),
    mailboxes(new Map()),
  );
  for (const item of items()) {
    const want = reference(item, stored);
    assert.deepEqual(
      await rendered(item, src),
      want === "UNKNOWN-CTE" ? want : concatPieces(want),
      item.kind,
    );
  }
});
