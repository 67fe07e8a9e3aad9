// Differential test of the gate's one reading: fast-check builds near-miss messages (spacing,
// folding, case, duplicate fields and parameters, boundary prefixes, preambles, nesting, transfer
// encodings, encoded words) around the shapes that pass; whenever tern's gate accepts one, two
// independent MIME parsers from npm (mailparser, postal-mime) must read exactly the accepted
// structure: the same From address, the same parts, no other text anywhere.
//
// A few thousand cases by default; GATE_DIFF_RUNS=100000 for a long run, GATE_DIFF_SEED to replay.

import assert from "node:assert/strict";
import fc from "fast-check";
import { simpleParser } from "mailparser";
import PostalMime from "postal-mime";
import { checkIncoming, checkOutgoing, type GateResult } from "../src/policy/mod.ts";
import { decodeBody, decodeEncodedWords, parseMessage } from "../src/mime/mod.ts";
import { armor, concat, packet } from "../src/policy/testdata/one_reading_cases.ts";

const RUNS = Number(Deno.env.get("GATE_DIFF_RUNS") ?? "3000");
const SEED = Deno.env.get("GATE_DIFF_SEED");
const SELF = "alice0001@relay.test";
const OTHER = "bobby0001@relay.test";
const TO = "carol0001@relay.test";
const PAYLOAD = armor(concat(packet(1, 50), packet(3, 30), packet(18, 90)));

interface Part {
  headers: string[];
  body: string;
}

interface Model {
  kind: "encrypted" | "securejoin" | "report" | "setup";
  direction: "outgoing" | "incoming";
  headers: string[];
  boundary: string;
  preamble: string;
  parts: Part[];
  /** Lines to insert before part i (index = parts.length: before the close delimiter). */
  inserts: Map<number, string>;
  close: string;
  epilogue: string;
  eol: "\r\n" | "\n";
}

function base(kind: Model["kind"], direction: Model["direction"]): Model {
  const from = kind === "report" ? "Mail Delivery System <MAILER-DAEMON@remote.test>" : `<${SELF}>`;
  const headers = [
    `From: ${from}`,
    `To: <${kind === "setup" ? SELF : TO}>`,
    kind === "setup"
      ? "Subject: Autocrypt Setup Message"
      : kind === "report"
      ? "Subject: Undelivered Mail"
      : "Subject: [...]",
    "Date: Mon, 23 Nov 2026 07:00:00 +0000",
    "Message-ID: <c0ffee@localhost>",
    "MIME-Version: 1.0",
  ];
  const b = "18ea8807fd3c06d8_e7262a8cf62d930d";
  const m: Model = {
    kind,
    direction,
    headers,
    boundary: b,
    preamble: "",
    parts: [],
    inserts: new Map(),
    close: `--${b}--`,
    epilogue: "",
    eol: "\r\n",
  };
  switch (kind) {
    case "encrypted":
      headers.push(
        `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n\tboundary="${b}"`,
      );
      m.parts = [
        {
          headers: ['Content-Type: application/pgp-encrypted; charset="utf-8"'],
          body: "Version: 1\r\n",
        },
        {
          headers: ['Content-Type: application/octet-stream; charset="utf-8"'],
          body: PAYLOAD,
        },
      ];
      break;
    case "securejoin":
      headers.push("Secure-Join: vc-request", `Content-Type: multipart/mixed; boundary="${b}"`);
      m.parts = [{
        headers: ["Content-Type: text/plain; charset=utf-8"],
        body: "Secure-Join: vc-request",
      }];
      break;
    case "report":
      headers.push(
        "Auto-Submitted: auto-replied",
        `Content-Type: multipart/report; report-type=delivery-status; boundary="${b}"`,
      );
      m.preamble = "This is a MIME-encapsulated message.\r\n\r\n";
      m.parts = [
        { headers: ["Content-Type: text/plain"], body: "Your message could not be delivered." },
        { headers: ["Content-Type: message/delivery-status"], body: "Reporting-MTA: dns; x\r\n" },
      ];
      break;
    case "setup":
      headers.push(`Content-Type: multipart/mixed; boundary="${b}"`);
      m.parts = [
        { headers: ["Content-Type: text/plain"], body: "This is the Autocrypt Setup Message." },
        {
          headers: ["Content-Type: application/autocrypt-setup"],
          body: "-----BEGIN PGP MESSAGE-----\r\n\r\nxx\r\n-----END PGP MESSAGE-----",
        },
      ];
      break;
  }
  return m;
}

function serialize(m: Model): string {
  let s = m.headers.join("\r\n") + "\r\n\r\n" + m.preamble;
  m.parts.forEach((p, i) => {
    s += m.inserts.get(i) ?? "";
    s += `--${m.boundary}\r\n` + p.headers.map((h) => h + "\r\n").join("") + "\r\n" + p.body +
      "\r\n";
  });
  s += (m.inserts.get(m.parts.length) ?? "") + m.close + "\r\n" + m.epilogue;
  return m.eol === "\n" ? s.replace(/\r\n/g, "\n") : s;
}

type Mutation = (m: Model) => void;

const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);

function headerIndex(m: Model, name: string): number {
  return m.headers.findIndex((h) => h.toLowerCase().startsWith(name.toLowerCase() + ":"));
}

const mutations: fc.Arbitrary<Mutation>[] = [
  // Spacing and case of field names.
  fc.tuple(
    pick(["from", "content-type", "secure-join", "subject", "auto-submitted"]),
    pick([" :", "\t:", "  :"]),
  )
    .map(([name, sep]) => (m: Model) => {
      const i = headerIndex(m, name);
      if (i >= 0) m.headers[i] = m.headers[i].replace(/^([^:]+):/, `$1${sep}`);
    }),
  fc.tuple(pick(["from", "content-type", "secure-join"]), pick(["upper", "lower", "lead"]))
    .map(([name, how]) => (m: Model) => {
      const i = headerIndex(m, name);
      if (i < 0) return;
      const h = m.headers[i];
      const colon = h.indexOf(":");
      const n = h.slice(0, colon);
      m.headers[i] =
        (how === "upper" ? n.toUpperCase() : how === "lower" ? n.toLowerCase() : " " + n) +
        h.slice(colon);
    }),
  // A second field: before or after, with another value.
  fc.tuple(
    pick([
      `From: <${OTHER}>`,
      `From : <${OTHER}>`,
      `Sender: <${OTHER}>`,
      "Content-Type: text/plain",
      "Secure-Join: vg-request",
      "Subject: Autocrypt Setup Message",
      "Subject: Hello",
      "To: <x@y.z>",
      "Content-Transfer-Encoding: base64",
    ]),
    fc.boolean(),
  ).map(([line, before]) => (m: Model) => {
    if (before) m.headers.unshift(line);
    else m.headers.push(line);
  }),
  // Folding at a blank of a field.
  fc.tuple(
    pick(["from", "content-type", "secure-join", "subject"]),
    pick(["\r\n ", "\r\n\t"]),
    fc.nat(5),
  )
    .map(([name, fold, k]) => (m: Model) => {
      const i = headerIndex(m, name);
      if (i < 0) return;
      const h = m.headers[i];
      const colon = h.indexOf(":");
      const spaces = [...h.matchAll(/[ ;]/g)].map((x) => x.index!).filter((x) => x > colon);
      if (spaces.length === 0) m.headers[i] = h.replace(":", ":" + fold);
      else {
        const at = spaces[k % spaces.length] + 1;
        m.headers[i] = h.slice(0, at) + fold.slice(0, 2) + " " + h.slice(at);
      }
    }),
  // Encoded words.
  pick([
    "Secure-Join: =?utf-8?q?vc-request?=",
    "Secure-Join: =?UTF-8?B?dmMtcmVxdWVzdA==?=",
    "Secure-Join: =?iso-8859-1?q?vg-request?=",
    "Secure-Join: =?utf-8?q?vc-request?= ",
    "Secure-Join: vc-request ",
    "Secure-Join:\tvc-request",
    "Subject: =?utf-8?q?Autocrypt_Setup_Message?=",
    `From: =?utf-8?q?=3C${OTHER.replace("@", "=40")}=3E?= <${SELF}>`,
    `From: "=?utf-8?q?x=22_=3C${OTHER.replace("@", "=40")}=3E?=" <${SELF}>`,
    `From: =?utf-8?q?Alice?= <${SELF}>`,
    `From: "Alice (work)" <${SELF}>`,
    `From: Alice <${SELF}> (comment)`,
    `From: ${SELF}`,
    `From: <${SELF}>, <${OTHER}>`,
    `From: <@route.test:${SELF}>`,
    `From: "${OTHER}" <${SELF}>`,
    `From: <${SELF.replace("alice", "ali\\ce")}>`,
    `Content-Type: =?utf-8?q?multipart/encrypted?=; boundary="18ea8807fd3c06d8_e7262a8cf62d930d"`,
  ]).map((line) => (m: Model) => {
    const name = line.slice(0, line.indexOf(":")).toLowerCase();
    const i = headerIndex(m, name);
    if (i >= 0) m.headers[i] = line;
    else m.headers.push(line);
  }),
  // The content type's own spelling.
  fc.tuple(
    pick([
      "T; boundary=B",
      "T;boundary=B",
      'T; boundary="B"',
      "T; Boundary=B",
      "T; boundary=B; boundary=B",
      "T; boundary=B; boundary=X",
      "T; boundary=X; boundary=B",
      'T; boundary="B"; BOUNDARY="X"',
      "T (c); boundary=B",
      "T; boundary=B (c)",
      "T ; boundary=B",
      "T; boundary = B",
      "T; boundary*=utf-8''B",
      "T; boundary*0=B",
      'T; boundary="B;x"',
      'T; boundary="B\\"x"',
      "T boundary=B",
      "T;; boundary=B;",
    ]),
    pick(["same", "upper", "space"]),
  ).map(([form, how]) => (m: Model) => {
    const i = headerIndex(m, "content-type");
    if (i < 0) return;
    const type = /^Content-Type:\s*([^;\s]+)/i.exec(m.headers[i])![1];
    const t = how === "upper"
      ? type.toUpperCase()
      : how === "space"
      ? type.replace("/", "/ ")
      : type;
    const params = /protocol="[^"]*"/.test(m.headers[i])
      ? '; protocol="application/pgp-encrypted"'
      : "";
    m.headers[i] = "Content-Type: " + form.replace("T", t + params).replaceAll("B", m.boundary);
  }),
  // Lines that begin with the boundary, delimiters spelled differently.
  fc.tuple(
    pick(["x", "--x", " x", "-", "--", "\t", "  ", "--  "]),
    fc.nat(3),
    pick(["insert", "replace"]),
  )
    .map(([suffix, at, how]) => (m: Model) => {
      const line = `--${m.boundary}${suffix}\r\n`;
      const where = at % (m.parts.length + 1);
      if (how === "replace" && suffix.trim() === "") {
        m.inserts.set(where, ""); // trailing blanks on a delimiter: fine for every reader
        m.close = `--${m.boundary}--${suffix}`;
        return;
      }
      m.inserts.set(where, line + "Content-Type: text/plain\r\n\r\nHello in cleartext\r\n");
    }),
  pick(["preamble", "epilogue", "both", "blank"]).map((where) => (m: Model) => {
    if (where === "blank") m.preamble = "\r\n \r\n\t\r\n";
    if (where === "preamble" || where === "both") m.preamble = "Hello in cleartext\r\n";
    if (where === "epilogue" || where === "both") m.epilogue = "Hello in cleartext\r\n";
  }),
  pick(["missing-close", "close-first", "close-x"]).map((how) => (m: Model) => {
    if (how === "missing-close") m.close = "";
    if (how === "close-first") m.preamble = `--${m.boundary}--\r\n`;
    if (how === "close-x") m.close = `--${m.boundary}--x`;
  }),
  // Nesting and extra parts.
  pick(["extra-text", "extra-html", "nested", "rfc822", "drop-last", "swap"]).map(
    (how) => (m: Model) => {
      if (how === "extra-text") {
        m.parts.push({ headers: ["Content-Type: text/plain"], body: "Hello in cleartext" });
      }
      if (how === "extra-html") {
        m.parts.unshift({ headers: ["Content-Type: text/html"], body: "<b>hi</b>" });
      }
      if (how === "nested") {
        m.parts[0] = {
          headers: ['Content-Type: multipart/mixed; boundary="in"'],
          body: `--in\r\n${m.parts[0].headers.join("\r\n")}\r\n\r\n${m.parts[0].body}\r\n--in--`,
        };
      }
      if (how === "rfc822") {
        m.parts.push({
          headers: ["Content-Type: message/rfc822"],
          body: "From: x@y.z\r\nSubject: inner\r\n\r\nHello in cleartext",
        });
      }
      if (how === "drop-last" && m.parts.length > 1) m.parts.pop();
      if (how === "swap" && m.parts.length > 1) m.parts.reverse();
    },
  ),
  // Transfer encodings of the parts the gate reads.
  fc.tuple(
    fc.nat(3),
    pick([
      "base64",
      "base64-junk",
      "qp",
      "qp-soft",
      "qp-lower",
      "BASE64",
      "base64 ",
      "x-uue",
      "7bit (c)",
    ]),
  )
    .map(([k, cte]) => (m: Model) => {
      const p = m.parts[k % m.parts.length];
      const text = p.body;
      const b64 = btoa(text).replace(/.{1,76}/g, (l) => l + "\r\n");
      let body = text;
      let name = cte;
      if (cte.startsWith("base64") || cte === "BASE64") body = b64;
      if (cte === "base64-junk") {
        name = "base64";
        body = b64.slice(0, 2) + "!" + b64.slice(2);
      }
      if (cte.startsWith("qp")) {
        name = "quoted-printable";
        body = text.replace(/=/g, cte === "qp-lower" ? "=3d" : "=3D");
        if (cte === "qp-soft") body = body.replace(/: /g, ":=\r\n ");
      }
      p.headers = p.headers.filter((h) => !/^content-transfer-encoding/i.test(h));
      p.headers.push(`Content-Transfer-Encoding: ${name}`);
      p.body = body;
    }),
  // The parts' own headers.
  fc.tuple(
    fc.nat(3),
    pick([
      "Content-Type: text/plain",
      "Content-Type : text/plain",
      "Content-Type: application/pgp-encrypted; charset=utf-16",
      "Content-Type: application/octet-stream; name=x; name=y",
      "Content-Disposition: inline",
      "X-Note: hi",
      "no colon here",
    ]),
  ).map(([k, line]) => (m: Model) => {
    m.parts[k % m.parts.length].headers.push(line);
  }),
  pick(["lf", "no-mime-version", "no-blank-after-part-header"]).map((how) => (m: Model) => {
    if (how === "lf") m.eol = "\n";
    if (how === "no-mime-version") m.headers = m.headers.filter((h) => !/^mime-version/i.test(h));
    if (how === "no-blank-after-part-header") m.parts[0].body = m.parts[0].body.replace(/^/, "");
  }),
];

const messageArb = fc.record({
  kind: pick(["encrypted", "encrypted", "securejoin", "report", "setup"] as const),
  direction: pick(["outgoing", "incoming"] as const),
  muts: fc.array(fc.oneof(...mutations), { maxLength: 3 }),
}).map(({ kind, direction, muts }) => {
  const m = base(kind, kind === "report" ? "incoming" : kind === "setup" ? "outgoing" : direction);
  for (const f of muts) f(m);
  return { text: serialize(m), direction: m.direction };
});

const dec = new TextDecoder();
const norm = (s: string | undefined) => (s ?? "").replace(/\r\n/g, "\n").trim();

interface Reading {
  parser: string;
  from: string[];
  text: string;
  html: boolean;
  attachments: { type: string; content: string }[];
  header(name: string): string[];
}

async function viaMailparser(text: string): Promise<Reading> {
  const m = await simpleParser(text, {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
  });
  const from =
    m.from?.value.flatMap((a) =>
      a.group ? a.group.map((g) => g.address ?? "") : [a.address ?? ""]
    ) ?? [];
  return {
    parser: "mailparser",
    from,
    text: norm(m.text),
    html: typeof m.html === "string" && m.html.trim() !== "",
    attachments: m.attachments.map((a) => ({
      type: a.contentType,
      content: dec.decode(a.content),
    })),
    header: (name) => {
      const v = m.headers.get(name);
      if (v === undefined) return [];
      const one = (x: unknown) =>
        typeof x === "string"
          ? x
          : (x as { value?: string; text?: string }).value ?? (x as { text?: string }).text ??
            String(x);
      return Array.isArray(v) ? v.map(one) : [one(v)];
    },
  };
}

async function viaPostalMime(text: string): Promise<Reading> {
  const m = await PostalMime.parse(text);
  const from = m.from
    ? ("group" in m.from && m.from.group
      ? m.from.group.map((g) => g.address)
      : [m.from.address ?? ""])
    : [];
  return {
    parser: "postal-mime",
    from,
    text: norm(m.text),
    html: typeof m.html === "string" && m.html.trim() !== "",
    attachments: m.attachments.map((a) => ({
      type: a.mimeType,
      content: typeof a.content === "string" ? a.content : dec.decode(a.content),
    })),
    header: (name) => m.headers.filter((h) => h.key === name).map((h) => h.value),
  };
}

/** What every reader must see when tern accepted `verdict`. */
function assertSame(r: Reading, verdict: GateResult & { accept: true }, text: string) {
  const why = `${r.parser} read it differently (${verdict.kind}):\n${text}`;
  assert.deepEqual(r.from.map((a) => a.toLowerCase()), [verdict.fromAddress], `From: ${why}`);
  const root = parseMessage(new TextEncoder().encode(text));
  switch (verdict.kind) {
    case "encrypted": {
      assert.equal(r.text, "", `text: ${why}`);
      assert.equal(r.html, false, `html: ${why}`);
      const types = r.attachments.map((a) => a.type.toLowerCase());
      const want = ["application/pgp-encrypted", "application/octet-stream"].slice(
        0,
        root.children.length,
      );
      assert.deepEqual(types, want, `parts: ${why}`);
      assert.equal(norm(r.attachments[0].content), "Version: 1", `control: ${why}`);
      if (root.children.length === 2) {
        const payload = dec.decode(decodeBody(root.children[1], new TextEncoder().encode(text)));
        assert.equal(norm(r.attachments[1].content), norm(payload), `payload: ${why}`);
      }
      break;
    }
    case "securejoin":
      assert.ok(
        ["secure-join: vc-request", "secure-join: vg-request"].includes(r.text.toLowerCase()),
        `text: ${why}`,
      );
      assert.equal(r.html, false, `html: ${why}`);
      assert.equal(r.attachments.length, 0, `attachments: ${why}`);
      // mailparser leaves encoded words in fields it does not know: the same value, undecoded.
      assert.ok(
        ["vc-request", "vg-request"].includes(decodeEncodedWords(r.header("secure-join")[0] ?? "")),
        `Secure-Join: ${why}`,
      );
      assert.equal(r.header("secure-join").length, 1, `Secure-Join: ${why}`);
      break;
    case "autocrypt_setup":
      assert.equal(r.header("subject").length, 1, `Subject: ${why}`);
      assert.equal(
        decodeEncodedWords(r.header("subject")[0]).trim(),
        "Autocrypt Setup Message",
        `Subject: ${why}`,
      );
      break;
    case "mailer_daemon":
      assert.equal(r.header("content-type").length, 1, `Content-Type: ${why}`);
      break;
  }
}

Deno.test({
  name:
    `gate differential: whenever tern accepts, mailparser and postal-mime read the same (${RUNS} cases)`,
  fn: async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(messageArb, async ({ text, direction }) => {
        const input = {
          mailFrom: direction === "incoming" && text.includes("MAILER-DAEMON") ? "" : SELF,
          recipients: [text.includes("Autocrypt Setup") ? SELF : TO],
          message: new TextEncoder().encode(text),
        };
        const v = direction === "outgoing" ? checkOutgoing(input) : checkIncoming(input);
        if (!v.accept) return;
        accepted++;
        for (const reading of [await viaMailparser(text), await viaPostalMime(text)]) {
          assertSame(reading, v, text);
        }
      }),
      { numRuns: RUNS, ...(SEED ? { seed: Number(SEED) } : {}) },
    );
    assert.ok(accepted > RUNS / 10, `only ${accepted} of ${RUNS} generated messages passed`);
  },
});
