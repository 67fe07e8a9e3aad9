// Differential test of DKIM verification against npm mailauth's verifier (strict mode), an
// independent implementation: generated messages with awkward header spacing, folding, name case,
// 8-bit bytes, duplicate and oversigned fields and bodies with trailing white space and empty
// lines, signed one to three times (mailauth: rsa-sha256 or ed25519-sha256 in every
// canonicalization, with and without l=; ours: relaxed/simple with oversigned names), then
// changed the way relays and attackers change mail. Each signature must pass with us exactly when
// it passes with mailauth, except that we also fail an l= that leaves part of the body unsigned.
// DNS comes from an in-memory table for both. TERN_FUZZ_RUNS scales the number of runs.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { dkimSign } from "mailauth/lib/dkim/sign.js";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { signMessage, verifyDkimSignatures } from "./dkim.ts";
import type { DnsResolver } from "./resolver.ts";

const RUNS = Math.max(20, Math.round(Number(Deno.env.get("TERN_FUZZ_RUNS") ?? 4000) / 10));

const pem = (k: import("node:crypto").KeyObject) =>
  k.export({ type: "pkcs8", format: "pem" }) as string;
const spki = (k: import("node:crypto").KeyObject) =>
  Buffer.from(k.export({ type: "spki", format: "der" }));

const RSA = generateKeyPairSync("rsa", { modulusLength: 2048 });
const RSA_SMALL = generateKeyPairSync("rsa", { modulusLength: 1024 });
const ED = generateKeyPairSync("ed25519");
const KEYS = {
  r1: {
    pem: pem(RSA.privateKey),
    record: `v=DKIM1; k=rsa; p=${spki(RSA.publicKey).toString("base64")}`,
  },
  r2: {
    pem: pem(RSA_SMALL.privateKey),
    record: `v=DKIM1; k=rsa; p=${spki(RSA_SMALL.publicKey).toString("base64")}`,
  },
  ed: {
    pem: pem(ED.privateKey),
    record: `v=DKIM1; k=ed25519; p=${spki(ED.publicKey).subarray(12).toString("base64")}`,
  },
} as const;
type Selector = keyof typeof KEYS;
const DOMAIN = "a.example";

const dns: DnsResolver = {
  mx: () => Promise.resolve([]),
  addresses: () => Promise.resolve([]),
  txt: (name) => {
    const sel = name.split(".")[0] as Selector;
    return Promise.resolve(
      name === `${sel}._domainkey.${DOMAIN}` && KEYS[sel] ? [KEYS[sel].record] : [],
    );
  },
};
function mailauthResolver(name: string) {
  return dns.txt(name).then((t) => {
    if (!t.length) throw Object.assign(new Error("no such record"), { code: "ENOTFOUND" });
    return t.map((x) => [x]);
  });
}

// ---- messages ---------------------------------------------------------------------------------

const NAMES = [
  "From",
  "To",
  "Subject",
  "Date",
  "Message-ID",
  "Autocrypt",
  "Content-Type",
  "X-Extra",
];
const word = fc.constantFrom(
  "alice@a.example",
  "bob@b.example",
  "hello",
  "[...]",
  "=?utf-8?q?h=C3=A9?=",
  "\xe9t\xe9", // 8-bit (Latin-1 bytes)
  "x;y=z",
  "a\xa0", // a no-break space is not white space for DKIM
);
const gap = fc.constantFrom(" ", "  ", "\t", " \t ", "\r\n ", "\r\n\t", " \r\n  ");
const casing = fc.constantFrom(
  (s: string) => s,
  (s: string) => s.toLowerCase(),
  (s: string) => s.toUpperCase(),
);
const field = (name: fc.Arbitrary<string>) =>
  fc.record({
    name,
    casing,
    beforeColon: fc.constantFrom("", "", "", " ", "\t"),
    afterColon: fc.constantFrom("", " ", "  ", "\t"),
    words: fc.array(fc.tuple(word, gap), { minLength: 1, maxLength: 4 }),
    trailing: fc.constantFrom("", "", " ", "\t", "  "),
  }).map((f) =>
    `${f.casing(f.name)}${f.beforeColon}:${f.afterColon}` +
    f.words.map(([w, g], i) => (i ? g : "") + w).join("") + `${f.trailing}\r\n`
  );
const header = fc.tuple(
  field(fc.constant("From")),
  fc.array(field(fc.constantFrom(...NAMES)), { maxLength: 6 }),
).map(([from, rest]) => from + rest.join(""));
const bodyLine = fc.constantFrom(
  "",
  " ",
  "\t",
  "text",
  "text ",
  " text",
  "a  b",
  "a\t\tb",
  "\xe9\xa0",
  ".",
  "x".repeat(90),
);
const body = fc.tuple(
  fc.array(bodyLine, { maxLength: 8 }),
  fc.constantFrom("", "\r\n", "\r\n\r\n", "\r\n \r\n", "\r\n\t\r\n\r\n"),
).map(([lines, end]) => lines.join("\r\n") + end);

// ---- signatures and changes -----------------------------------------------------------------------

type Sig =
  | {
    by: "mailauth";
    selector: Selector;
    canonicalization: string;
    maxBodyLength: number | null;
  }
  | { by: "ours"; oversign: string[] };
const sig: fc.Arbitrary<Sig> = fc.oneof(
  fc.record({
    by: fc.constant("mailauth" as const),
    selector: fc.constantFrom<Selector>("r1", "r2", "ed"),
    canonicalization: fc.constantFrom(
      "relaxed/relaxed",
      "relaxed/simple",
      "simple/simple",
      "simple/relaxed",
    ),
    maxBodyLength: fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 80 })),
  }),
  fc.record({
    by: fc.constant("ours" as const),
    oversign: fc.subarray(["from", "subject", "to", "date", "reply-to"], { minLength: 1 }),
  }),
);

const latin1 = (s: string) => Buffer.from(s, "latin1");
const text = (b: Uint8Array) => Buffer.from(b).toString("latin1");

async function sign(message: string, s: Sig): Promise<string> {
  if (s.by === "ours") {
    const signed = await signMessage(latin1(message), DOMAIN, {
      selector: "r1",
      privateKeyPem: KEYS.r1.pem,
    }, { oversign: s.oversign });
    return text(signed);
  }
  const r = await dkimSign(latin1(message), {
    canonicalization: s.canonicalization,
    signatureData: [{
      signingDomain: DOMAIN,
      selector: s.selector,
      privateKey: KEYS[s.selector].pem,
      algorithm: s.selector === "ed" ? "ed25519-sha256" : "rsa-sha256",
      ...(s.maxBodyLength === null ? {} : { maxBodyLength: s.maxBodyLength }),
    }],
  } as never);
  assert.equal(r.errors?.length ?? 0, 0, JSON.stringify(r.errors));
  return r.signatures + message;
}

/** Changes after signing: some break signatures, some only a strict canonicalization. */
const change = fc.constantFrom(
  (m: string) => m + "appended line\r\n",
  (m: string) => m + "\r\n\r\n",
  (m: string) => m.replace(/\r\n\r\n([^]*?) /, "\r\n\r\n$1  "),
  (m: string) => m.replace(/\r\n\r\n([^]*?)\r\n/, "\r\n\r\n$1\t\r\n"),
  (m: string) => "From: mallory@a.example\r\n" + m,
  (m: string) => "Received: from x by y\r\n" + m,
  (m: string) => m.replace("\r\n\r\n", "\r\nFrom: mallory@a.example\r\n\r\n"),
  (m: string) => m.replace("\r\n\r\n", "\r\nSubject: added below\r\n\r\n"),
  (m: string) => m.replace(/^(?!DKIM)(\w+):/m, (_, n: string) => `${n.toUpperCase()}:`),
  (m: string) => m.replace(/^(?!DKIM)(\w+):/m, "$1:  "),
  (m: string) => m.replace(/^(?!DKIM)(\w+:[^\r]*?) /m, "$1\r\n\t"),
  (m: string) => m.replace(/(\r\n\r\n[^]*)$/, (b) => b.replace("text", "test")),
);

Deno.test("DKIM verification agrees with mailauth on generated, signed and changed messages", async () => {
  const now = Date.now();
  await fc.assert(
    fc.asyncProperty(
      header,
      body,
      fc.array(sig, { minLength: 1, maxLength: 3 }),
      fc.array(change, { maxLength: 2 }),
      async (head, bodyText, sigs, changes) => {
        let message = head + "\r\n" + bodyText;
        for (const s of sigs) message = await sign(message, s);
        for (const c of changes) message = c(message);
        const bytes = latin1(message);
        const ours = await verifyDkimSignatures(new Uint8Array(bytes), dns, now);
        const theirs = (await dkimVerify(bytes, {
          resolver: mailauthResolver,
          strict: true,
          curTime: new Date(now),
        } as never)).results as unknown as {
          status: { result: string; comment?: string };
          canonBodyLengthLimited?: boolean;
          canonBodyLengthLimit?: number;
          canonBodyLengthTotal?: number;
        }[];
        const where = () =>
          `\n${JSON.stringify(message)}\nours: ${JSON.stringify(ours)}\nmailauth: ${
            JSON.stringify(
              theirs.map((t) => [t.status, t.canonBodyLengthLimit, t.canonBodyLengthTotal]),
            )
          }`;
        assert.equal(ours.length, theirs.length, where());
        for (const [i, t] of theirs.entries()) {
          const wholeBody = !t.canonBodyLengthLimited ||
            t.canonBodyLengthLimit === t.canonBodyLengthTotal;
          const expected = t.status.result === "pass" && wholeBody;
          assert.equal(ours[i].ok, expected, `signature ${i}: ${where()}`);
        }
      },
    ),
    { numRuns: RUNS },
  );
});
