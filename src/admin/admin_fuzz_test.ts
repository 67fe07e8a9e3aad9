// Generated requests against the whole admin app (real services over an in-memory store): random
// methods, paths under /api/admin (known resources, real and junk ids, percent-encoding, `..`,
// very long segments), Authorization and Content-Type headers, and bodies (JSON of the wrong
// shape, huge, deeply nested, invalid, binary). The API must never answer 5xx or hang, must answer
// every error as JSON {"error": string}, must refuse everything without the right token with a
// bare 401, and must keep working afterwards. Also: the token check and the failed-login throttle
// (driven by the injected clock and sleep, so nothing actually waits).
//
// TERN_FUZZ_RUNS scales the number of runs (default below).

import assert from "node:assert/strict";
import fc from "fast-check";
import { createAdminApp } from "./app.ts";
import { tokensMatch } from "./require_admin.ts";
import { hashPassword } from "../auth/passwords.ts";
import { LoginThrottle } from "../auth/mod.ts";
import { bytesBody } from "../store/message_input.ts";
import { ADMIN_TOKEN, adminServices, fromAddress } from "./testdata/services.ts";

const RUNS = Number(Deno.env.get("TERN_FUZZ_RUNS") ?? 4000);
const BASE = "/api/admin";
const REQUEST_TIMEOUT_MS = 5000;

/** Statuses the API may answer to an authorized request. */
const AUTHORIZED_STATUSES = new Set([200, 201, 204, 400, 401, 404, 405, 409, 413, 415, 422]);

// ---- the app under test ------------------------------------------------------------------------

type Services = Awaited<ReturnType<typeof adminServices>>;

const SEED_ACCOUNTS = ["alice@example.org", "bob@example.org", "carol@example.org"];
const SEED_TOKENS = ["seed-token-1", "seed_token_2", "SEED-TOKEN-3"];
const SEED_BLOCKED = ["spammer@example.org", "@bad.example", "@evil.example"];

const SEED_HASH = await hashPassword("secret-pass-1");

/** Puts back whatever seed data earlier requests deleted, so ids keep hitting real records. */
async function reseed(t: Services): Promise<void> {
  for (const address of SEED_ACCOUNTS) {
    if (!(await t.store.getAccount(address))) {
      await t.store.createAccount({ address, passwordHash: SEED_HASH, now: t.clock.now });
    }
  }
  for (const token of SEED_TOKENS) {
    if (await t.store.getToken(token)) continue;
    await t.store.createToken({
      token,
      maxUses: 2,
      uses: 0,
      expiresAt: null,
      createdAt: t.clock.now,
      comment: "seed",
    });
  }
  const blocked = new Set((await t.store.listBlocked()).map((b) => b.entry));
  for (const e of SEED_BLOCKED) {
    if (!blocked.has(e)) await t.store.addBlocked(e, "seed", t.clock.now);
  }
  for (let i = (await t.store.listQueue({ offset: 0, limit: 10 })).total; i < 3; i++) {
    await t.store.enqueue({
      sender: SEED_ACCOUNTS[i],
      body: bytesBody(new Uint8Array(16)),
      recipients: [`r${i}@remote.example`, `s${i}@other.example`],
      now: t.clock.now,
    });
  }
}

/**
 * Seeded services. The login throttle counts every failure against the admin token as one
 * account, so properties about something else use one that never throttles; the throttle has its
 * own property below.
 */
async function seeded(): Promise<Services> {
  const t = await adminServices({
    loginThrottle: new LoginThrottle({ freeFailures: Number.MAX_SAFE_INTEGER }),
  });
  try {
    await reseed(t);
    await t.store.recordFederation("remote.example", "sent", t.clock.now);
  } catch (err) {
    t[Symbol.dispose]();
    throw err;
  }
  return t;
}

type App = ReturnType<typeof createAdminApp>;

/** app.request() with a deadline, so a hang fails the run instead of the whole test file. */
async function send(app: App, path: string, init: RequestInit, ip: string): Promise<Response> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)),
      REQUEST_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([
      Promise.resolve(app.request(path, init, fromAddress(ip))),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

let ipCounter = 0;
/** A fresh client address per request keeps the failed-login throttle out of the fuzzing. */
function freshIp(): string {
  ipCounter++;
  return `10.${(ipCounter >> 16) & 255}.${(ipCounter >> 8) & 255}.${ipCounter & 255}`;
}

// ---- generators --------------------------------------------------------------------------------

const RESOURCES = [
  "status",
  "push",
  "certificates",
  "accounts",
  "registration",
  "tokens",
  "blocklist",
  "federation",
  "queue",
  "settings",
];
const SETTING_KEYS = [
  "registration",
  "jit_enabled",
  "push_enabled",
  "federation_mode",
  "federation_allowlist",
  "admin_contact",
];
const ACTIONS = ["block", "unblock", "password", "retry"];

const junkSegment = fc.oneof(
  fc.constantFrom(
    "",
    ".",
    "..",
    "%",
    "%%",
    "%zz",
    "%E0%A4%A",
    "%ED%A0%80",
    "%C0%AF",
    "%FF%FE",
    "%00",
    "%2F",
    "%2f..%2f",
    "%2e%2e",
    "%2E",
    "%25",
    "%25%32%46",
    "a%2Fb",
    "%40",
    "@",
    "@@",
    "@example.org",
    "*",
    "~",
    "%20",
    "+",
    ";x=1",
    "\\",
    "..%2F..",
    ":id",
    ":email",
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty",
    "null",
    "undefined",
  ),
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }).map(encodeURIComponent),
  fc.uint8Array({ maxLength: 24 }).map((b) =>
    Array.from(b, (x) => "%" + x.toString(16).padStart(2, "0")).join("")
  ),
  fc.tuple(fc.constantFrom("a", "%41", "é", "."), fc.integer({ min: 300, max: 20_000 })).map((
    [c, n],
  ) => c.repeat(n)),
);

const numberish = fc.oneof(
  fc.integer({ min: -3, max: 10 }).map(String),
  fc.integer().map(String),
  fc.bigInt().map(String),
  fc.double().map(String),
  fc.constantFrom(
    "1e3",
    "0x10",
    "1.5",
    "-0",
    "01",
    "9007199254740993",
    "99999999999999999999999",
    "Infinity",
    "NaN",
    " 1",
  ),
);

const idSegment = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SEED_ACCOUNTS) },
  fc.constantFrom("alice", "ALICE@EXAMPLE.ORG", " bob ", "nobody@example.org", "x@elsewhere.org"),
  { weight: 2, arbitrary: fc.constantFrom(...SEED_TOKENS) },
  fc.constantFrom(...SEED_BLOCKED, "bad.example", "%40evil.example", encodeURIComponent("@x.y")),
  fc.constantFrom(...SETTING_KEYS, "Registration", "admin_token", "secret"),
  { weight: 2, arbitrary: numberish },
  { weight: 3, arbitrary: junkSegment },
);

const query = fc.array(
  fc.tuple(
    fc.oneof(fc.constantFrom("limit", "offset", "search", "status"), junkSegment),
    fc.oneof(
      numberish,
      fc.constantFrom("queued", "deferred", "delivered", "failed", "bogus", "", "al", "%", "%zz"),
      junkSegment,
    ),
  ),
  { maxLength: 4 },
).map((pairs) => pairs.length === 0 ? "" : "?" + pairs.map(([k, v]) => `${k}=${v}`).join("&"));

/** A path that starts with /api/admin; `..` and friends may still lead out of it. */
const apiPath = fc.record({
  resource: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...RESOURCES) },
    { weight: 1, arbitrary: junkSegment },
  ),
  id: fc.option(idSegment, { freq: 2 }),
  action: fc.option(fc.oneof(fc.constantFrom(...ACTIONS), junkSegment), { freq: 3 }),
  prefix: fc.oneof({ weight: 6, arbitrary: fc.constant("") }, fc.constantFrom("/", "./", "//")),
  trailing: fc.constantFrom("", "", "", "/", "//"),
  query,
}).map(({ resource, id, action, prefix, trailing, query }) => {
  let p = `${BASE}/${prefix}${resource}`;
  if (id !== null) p += "/" + id;
  if (id !== null && action !== null) p += "/" + action;
  return p + trailing + query;
});

type BodyKind =
  | "account"
  | "password"
  | "registration"
  | "token"
  | "block"
  | "federation"
  | "setting";

/** Every route of the API; `:x` is filled with a real or junk value; the body it reads. */
const ROUTES: [string, string, BodyKind?][] = [
  ["GET", "/status"],
  ["GET", "/push"],
  ["GET", "/certificates"],
  ["GET", "/accounts"],
  ["POST", "/accounts", "account"],
  ["GET", "/accounts/:email"],
  ["DELETE", "/accounts/:email"],
  ["POST", "/accounts/:email/block"],
  ["POST", "/accounts/:email/unblock"],
  ["PUT", "/accounts/:email/password", "password"],
  ["GET", "/registration"],
  ["PUT", "/registration", "registration"],
  ["GET", "/tokens"],
  ["POST", "/tokens", "token"],
  ["DELETE", "/tokens/:token"],
  ["GET", "/blocklist"],
  ["POST", "/blocklist", "block"],
  ["DELETE", "/blocklist/:entry"],
  ["DELETE", "/blocklist", "block"],
  ["GET", "/federation"],
  ["PUT", "/federation", "federation"],
  ["GET", "/queue"],
  ["GET", "/queue/:id"],
  ["POST", "/queue/:id/retry"],
  ["DELETE", "/queue/:id"],
  ["GET", "/settings"],
  ["PUT", "/settings/:key", "setting"],
];

const FILL: Record<string, fc.Arbitrary<string>> = {
  ":email": fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...SEED_ACCOUNTS, "alice", "BOB", "%20carol%20") },
    junkSegment,
  ),
  ":token": fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...SEED_TOKENS) }, junkSegment),
  ":entry": fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...SEED_BLOCKED, "bad.example", "%40evil.example") },
    junkSegment,
  ),
  ":key": fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...SETTING_KEYS) }, junkSegment),
  ":id": fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 80 }).map(String) }, numberish),
};

interface Target {
  method: string;
  path: string;
  kind?: BodyKind;
}

/** A real route (method and path), its parameters filled in. */
const routed: fc.Arbitrary<Target> = fc.constantFrom(...ROUTES).chain(([m, template, kind]) => {
  const parts = template.split("/").map((seg) => FILL[seg] ?? fc.constant(seg));
  const trailing = fc.oneof({ weight: 5, arbitrary: fc.constant("") }, fc.constant("/"));
  return fc.tuple(fc.tuple(...parts), query, trailing).map(([segs, q, t]) => ({
    method: m,
    path: BASE + segs.join("/") + t + q,
    kind,
  }));
});

const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS");

/** Method and path: a real route, or anything under /api/admin. */
const target: fc.Arbitrary<Target> = fc.oneof(
  { weight: 3, arbitrary: routed },
  { weight: 2, arbitrary: fc.record({ method, path: apiPath }) },
);

/** The admin token with one character changed: wrong, but of the right length. */
const sameLengthWrong = fc.tuple(
  fc.nat({ max: ADMIN_TOKEN.length - 1 }),
  fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-_".split("")),
).map(([i, ch]) => {
  const c = ch === ADMIN_TOKEN[i] ? (ch === "x" ? "y" : "x") : ch;
  return ADMIN_TOKEN.slice(0, i) + c + ADMIN_TOKEN.slice(i + 1);
});

/** Authorization values carrying the right token (the scheme is case-insensitive). */
const goodAuth = fc.constantFrom(
  `Bearer ${ADMIN_TOKEN}`,
  `bearer ${ADMIN_TOKEN}`,
  `BEARER   ${ADMIN_TOKEN}`,
  `Bearer\t${ADMIN_TOKEN}`,
  `Bearer ${ADMIN_TOKEN}   `,
);

/** Anything else: no header, other schemes, near misses, junk. */
const badAuth: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    "",
    "Bearer",
    "Bearer ",
    ADMIN_TOKEN,
    `Basic ${btoa(`admin:${ADMIN_TOKEN}`)}`,
    `Bearer ${ADMIN_TOKEN}x`,
    `Bearer x${ADMIN_TOKEN}`,
    `Bearer ${ADMIN_TOKEN.slice(0, -1)}`,
    `Bearer ${ADMIN_TOKEN.toUpperCase()}`,
    `Bearer ${ADMIN_TOKEN} ${ADMIN_TOKEN}`,
    `Bearer ${ADMIN_TOKEN},Bearer ${ADMIN_TOKEN}`,
    `Token ${ADMIN_TOKEN}`,
    `Bearer "${ADMIN_TOKEN}"`,
    `Bearer%20${ADMIN_TOKEN}`,
  ),
  sameLengthWrong.map((s) => `Bearer ${s}`),
  fc.string({ maxLength: 80 }),
  fc.string({ maxLength: 80 }).map((s) => `Bearer ${s}`),
  fc.string({ maxLength: 2000, unit: fc.constantFrom(..."ab=/+") }).map((s) => `Bearer ${s}`),
).filter((h) => h === undefined || /^Bearer\s+(\S+)\s*$/i.exec(h.trim())?.[1] !== ADMIN_TOKEN);

const contentType = fc.option(
  fc.oneof(
    fc.constantFrom(
      "application/json",
      "application/json; charset=utf-8",
      "application/json; charset=utf-16",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=xyz",
      "application/octet-stream",
      "*/*",
      "",
    ),
    fc.string({ maxLength: 40 }),
  ),
  { freq: 3 },
);

/** Mostly absent: a declared length is just a header to the app, checked before reading. */
const contentLength = fc.oneof(
  { weight: 12, arbitrary: fc.constant(null) },
  fc.constantFrom("0", "1", "65536", "65537", "999999999999", "-1", "abc", "1e9", " 70000", "NaN"),
);

const jsonLeaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 30 }),
  fc.constantFrom(
    "",
    " ",
    "true",
    "false",
    "1",
    "-1",
    "open",
    "closed",
    "token",
    "blocklist",
    "allowlist",
    "alice",
    "secret-pass-1",
    "bad.example",
    "a,b,,c",
    "\ud800",
  ),
);
const jsonAny = fc.oneof(
  { weight: 4, arbitrary: jsonLeaf },
  fc.array(jsonLeaf, { maxLength: 4 }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), jsonLeaf, { maxKeys: 3 }),
);

const BODY_KEYS = [
  "email",
  "password",
  "entry",
  "reason",
  "mode",
  "allowlist",
  "registration",
  "jit_enabled",
  "max_uses",
  "expires_in_hours",
  "comment",
  "token",
  "value",
];

/** Objects with the fields the routes read, holding values of any type. */
const fieldSoup = fc.dictionary(
  fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...BODY_KEYS) }, fc.string({ maxLength: 10 })),
  jsonAny,
  { maxKeys: 5, noNullPrototype: true },
).map((o) => JSON.stringify(o));

/** Bodies close to valid for each route, so requests get past parsing into the services. */
const PLAUSIBLE: Record<BodyKind, fc.Arbitrary<string>> = Object.fromEntries(
  Object.entries({
    account: fc.record({
      email: fc.oneof(
        fc.constantFrom(...SEED_ACCOUNTS, "dave", "Erin@Example.org", "x@elsewhere.org", "a"),
        fc.stringMatching(/^[a-z0-9]{1,12}$/),
      ),
      password: fc.constantFrom("secret-pass-9", "short", "", " ".repeat(12)),
    }, { requiredKeys: [] }),
    password: fc.record({
      password: fc.oneof(fc.constantFrom("secret-pass-9", "short", "", " "), fc.string()),
    }, { requiredKeys: [] }),
    block: fc.record({
      entry: fc.oneof(
        fc.constantFrom(...SEED_BLOCKED, "bad.example", "[::1]", "@[1.2.3.4]", "a@b", "-x.y"),
        fc.domain(),
        fc.emailAddress(),
      ),
      reason: fc.string({ maxLength: 250 }),
    }, { requiredKeys: ["entry"] }),
    federation: fc.record({
      mode: fc.constantFrom("blocklist", "allowlist", "open", ""),
      allowlist: fc.oneof(fc.array(fc.domain(), { maxLength: 3 }), fc.domain(), fc.constant("")),
    }, { requiredKeys: [] }),
    registration: fc.record({
      registration: fc.constantFrom("open", "closed", "token", "maybe"),
      jit_enabled: fc.constantFrom(true, false, "true", "false", 1, "yes"),
    }, { requiredKeys: [] }),
    token: fc.record({
      max_uses: fc.oneof(fc.integer({ min: -2, max: 2_000_000 }), fc.constant(1.5)),
      expires_in_hours: fc.oneof(
        fc.double({ min: -1, max: 100_000, noNaN: true }),
        fc.constant(0),
      ),
      comment: fc.string({ maxLength: 250 }),
      token: fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{4,12}$/), fc.constantFrom(...SEED_TOKENS)),
    }, { requiredKeys: [] }),
    setting: fc.record({
      value: fc.oneof(
        fc.constantFrom("true", "off", "open", "token", "allowlist", "a.example, b.example"),
        jsonAny,
      ),
    }, { requiredKeys: [] }),
  }).map(([k, arb]) => [k, (arb as fc.Arbitrary<unknown>).map((o) => JSON.stringify(o))]),
) as Record<BodyKind, fc.Arbitrary<string>>;
const plausible = fc.oneof(...Object.values(PLAUSIBLE));

const rawBody: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 2, arbitrary: fc.string({ maxLength: 60 }) },
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.uint8Array({ maxLength: 200 }),
  fc.constantFrom(
    "{",
    "}",
    "[]",
    "null",
    "0",
    '"str"',
    "true",
    "{}",
    "   ",
    "\ufeff{}",
    '{"__proto__": {"value": 1, "email": "x"}}',
    '{"value": 1, "__proto__": null}',
    '{"constructor": {"prototype": {"value": 1}}}',
    '{"email": "a", "email": 5}',
    '{"value": 1e400}',
    '{"max_uses": 1e400}',
    '{"max_uses": -0}',
    '{"entry": "\\u0000"}',
    '{"email": "\\ud800@example.org", "password": "\\udfff\\udfff\\udfff\\udfff\\udfff"}',
    '{"token": "\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000"}',
  ),
  // Near and over the 64 KiB body limit; deep nesting.
  fc.oneof(
    fc.integer({ min: 60_000, max: 70_000 }).map((n) => JSON.stringify({ email: "a".repeat(n) })),
    fc.integer({ min: 60_000, max: 70_000 }).map((n) =>
      JSON.stringify({ value: "é".repeat(n / 2) })
    ),
    fc.constant("x".repeat(300_000)),
    fc.integer({ min: 100, max: 20_000 }).map((d) => "[".repeat(d) + "]".repeat(d)),
    fc.integer({ min: 100, max: 12_000 }).map((d) => '{"value":'.repeat(d) + "1" + "}".repeat(d)),
    fc.integer({ min: 100, max: 12_000 }).map((d) => '{"a":'.repeat(d)),
  ),
);

const body: fc.Arbitrary<string | Uint8Array | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: plausible },
  { weight: 3, arbitrary: fieldSoup },
  { weight: 3, arbitrary: rawBody },
);

interface Req {
  method: string;
  path: string;
  auth: string | undefined;
  contentType: string | null;
  contentLength: string | null;
  body: string | Uint8Array | undefined;
}

const request = (auth: fc.Arbitrary<string | undefined>): fc.Arbitrary<Req> =>
  target.chain(({ method, path, kind }) =>
    fc.record({
      auth,
      contentType,
      contentLength,
      body: kind ? fc.oneof({ weight: 2, arbitrary: PLAUSIBLE[kind] }, body) : body,
    }).map((rest) => ({ method, path, ...rest }))
  );

function init(r: Req): RequestInit {
  const headers = new Headers();
  if (r.auth !== undefined) headers.set("authorization", r.auth);
  if (r.contentType !== null) headers.set("content-type", r.contentType);
  if (r.contentLength !== null) headers.set("content-length", r.contentLength);
  headers.set("x-forwarded-for", "127.0.0.1");
  const withBody = r.method !== "GET" && r.body !== undefined;
  const b = r.body instanceof Uint8Array ? new Uint8Array(r.body) : r.body;
  return { method: r.method, headers, body: withBody ? b : undefined };
}

/** Whether the URL, once normalized (dot segments), still addresses the admin API. */
function inApi(path: string): boolean {
  const p = new URL(path, "http://localhost").pathname;
  return p === BASE || p.startsWith(BASE + "/");
}

function show(r: Req): string {
  const cut = (s: string) => s.length > 300 ? `${s.slice(0, 300)}…(${s.length} chars)` : s;
  const b = r.body instanceof Uint8Array ? `<${r.body.length} bytes>` : r.body;
  return JSON.stringify({ ...r, path: cut(r.path), body: b === undefined ? b : cut(b) });
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON; the caller decides whether that is allowed
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** TERN_FUZZ_VERBOSE=1 prints how many answers of each status each route got. */
const VERBOSE = Deno.env.get("TERN_FUZZ_VERBOSE") === "1";
const tally = new Map<string, number>();
if (VERBOSE) {
  globalThis.addEventListener("unload", () => {
    console.log([...tally].sort().map(([k, n]) => `${k}: ${n}`).join("\n"));
  });
}

/** Checks shared by every answer; returns it for more specific checks. */
async function check(app: App, r: Req, ip: string): Promise<Answer> {
  const a = await answer(await send(app, r.path, init(r), ip));
  const where = () => `${show(r)} -> ${a.status} ${a.text.slice(0, 300)}`;
  assert.ok(a.status < 500, `5xx: ${where()}`);
  if (a.status >= 400 && inApi(r.path)) {
    assert.match(a.headers.get("content-type") ?? "", /^application\/json/, `type: ${where()}`);
    const j = a.json as { error?: unknown } | undefined;
    assert.ok(
      j && typeof j === "object" && !Array.isArray(j),
      `error not a JSON object: ${where()}`,
    );
    assert.equal(typeof j.error, "string", `no "error" string: ${where()}`);
    assert.ok((j.error as string).length > 0, `empty error: ${where()}`);
  }
  if (inApi(r.path)) {
    assert.equal(a.headers.get("cache-control"), "no-store", `cache-control: ${where()}`);
  }
  if (VERBOSE) {
    const segs = new URL(r.path, "http://x").pathname.split("/");
    const res = RESOURCES.includes(segs[3]) && inApi(r.path) ? segs[3] : "<other>";
    const k = `${r.method} ${res}${segs.length > 4 ? "/…" : ""} ${a.status}`;
    tally.set(k, (tally.get(k) ?? 0) + 1);
  }
  return a;
}

async function stillHealthy(app: App): Promise<void> {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
  for (const p of ["/status", "/accounts", "/settings", "/tokens", "/blocklist", "/queue"]) {
    const a = await answer(await send(app, BASE + p, { headers: auth }, freshIp()));
    assert.equal(a.status, 200, `GET ${p} afterwards: ${a.status} ${a.text.slice(0, 200)}`);
    assert.ok(a.json && typeof a.json === "object", `GET ${p} afterwards is not JSON`);
  }
}

// ---- properties --------------------------------------------------------------------------------

Deno.test("admin API fuzz: authorized random requests never 5xx and fail only with JSON errors", async () => {
  using t = await seeded();
  const app = createAdminApp(t.deps);
  await fc.assert(
    fc.asyncProperty(request(goodAuth), async (r) => {
      await reseed(t);
      const a = await check(app, r, freshIp());
      if (!inApi(r.path)) return;
      assert.ok(
        AUTHORIZED_STATUSES.has(a.status),
        `unexpected status ${a.status}: ${show(r)} -> ${a.text.slice(0, 300)}`,
      );
      assert.notEqual(a.status, 401, `right token refused: ${show(r)}`);
      if (a.status < 300 && a.status !== 204) {
        assert.ok(a.json !== undefined, `2xx without JSON: ${show(r)} -> ${a.text.slice(0, 300)}`);
      }
    }),
    { numRuns: RUNS },
  );
  await stillHealthy(app);
  // No setting that is a secret ever came back in clear, whatever was written.
  const settings = (await answer(
    await send(app, `${BASE}/settings`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    }, freshIp()),
  )).json as { items: { key: string; value: unknown; secret?: boolean }[] };
  for (const s of settings.items) if (s.secret) assert.equal(s.value, null, s.key);
});

Deno.test("admin API fuzz: without the right token every request is a bare 401", async () => {
  using t = await seeded();
  const app = createAdminApp(t.deps);
  const before = {
    accounts: (await t.accounts.list({ limit: 500 })).total,
    tokens: (await t.store.listTokens()).length,
    blocked: (await t.store.listBlocked()).length,
    registration: t.settings.get("registration"),
    federation: t.settings.get("federation_mode"),
  };
  await fc.assert(
    fc.asyncProperty(request(badAuth), async (r) => {
      const a = await check(app, r, freshIp());
      if (!inApi(r.path)) return;
      const where = `${show(r)} -> ${a.status} ${a.text.slice(0, 300)}`;
      assert.equal(a.status, 401, where);
      assert.match(a.headers.get("www-authenticate") ?? "", /^Bearer /, where);
      const j = a.json as Record<string, unknown>;
      assert.deepEqual(Object.keys(j), ["error"], `data leaked: ${where}`);
      assert.ok(
        j.error === "missing admin token" || j.error === "invalid admin token",
        `error text: ${where}`,
      );
      assert.ok(!a.text.includes("@example.org"), `data leaked: ${where}`);
    }),
    { numRuns: RUNS },
  );
  assert.deepEqual(
    {
      accounts: (await t.accounts.list({ limit: 500 })).total,
      tokens: (await t.store.listTokens()).length,
      blocked: (await t.store.listBlocked()).length,
      registration: t.settings.get("registration"),
      federation: t.settings.get("federation_mode"),
    },
    before,
    "unauthorized requests changed nothing",
  );
  await stillHealthy(app);
});

Deno.test("admin API fuzz: with an empty admin token every API request is 403", async () => {
  using t = await adminServices({ adminToken: () => "" });
  const app = createAdminApp(t.deps);
  await fc.assert(
    fc.asyncProperty(request(fc.oneof(goodAuth, badAuth, fc.constant("Bearer "))), async (r) => {
      const a = await check(app, r, freshIp());
      if (!inApi(r.path)) return;
      assert.equal(a.status, 403, show(r));
      assert.deepEqual(a.json, { error: "admin API is disabled" }, show(r));
    }),
    { numRuns: Math.ceil(RUNS / 10) },
  );
});

Deno.test("admin API fuzz: a wrong token of the right length is refused like any other", async () => {
  using t = await seeded();
  const app = createAdminApp(t.deps);
  // The comparison hashes both sides (SHA-256) and uses timingSafeEqual, so lengths and the
  // position of the first difference do not matter; here only its outcome can be observed.
  await fc.assert(
    fc.asyncProperty(sameLengthWrong, async (wrong) => {
      assert.equal(wrong.length, ADMIN_TOKEN.length);
      const a = await answer(
        await send(app, `${BASE}/status`, {
          headers: { authorization: `Bearer ${wrong}` },
        }, freshIp()),
      );
      assert.equal(a.status, 401);
      assert.deepEqual(a.json, { error: "invalid admin token" });
    }),
    { numRuns: 200 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 64 }), fc.string({ maxLength: 64 }), (a, b) => {
      assert.equal(tokensMatch(a, b), a === b && b !== "");
      assert.equal(tokensMatch(b, b), b !== "");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("admin API fuzz: failed logins are throttled per address and as one account", async () => {
  // Invariants of the throttle (auth/login_throttle.ts, defaults: 5 free failures per key within
  // 10 minutes, then attempts spaced out, refused with 429 past a 30 s wait), whatever the order
  // of good and bad tokens, addresses and clock steps: a bad token never passes and a good one is
  // never 401; nothing waits or is refused while fewer than 5 failures count; an address whose
  // last attempt was a success goes through at once.
  const FREE = 5, WINDOW = 10 * 60_000, MAX_WAIT = 30_000;
  const step = fc.record({
    ip: fc.constantFrom("203.0.113.1", "203.0.113.2", "203.0.113.3", "2001:db8::1"),
    good: fc.boolean(),
    advanceMs: fc.oneof(
      { weight: 5, arbitrary: fc.constant(0) },
      fc.integer({ min: 1, max: 5_000 }),
      fc.integer({ min: 590_000, max: 610_000 }),
    ),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60 }), async (steps) => {
      using t = await adminServices();
      const app = createAdminApp(t.deps);
      const failures: number[] = [];
      const lastWasSuccess = new Map<string, boolean>();
      for (const [i, s] of steps.entries()) {
        t.clock.now += s.advanceMs;
        const sleepsBefore = t.sleeps.length;
        const a = await answer(
          await send(app, `${BASE}/status`, {
            headers: { authorization: `Bearer ${s.good ? ADMIN_TOKEN : "guess"}` },
          }, s.ip),
        );
        const slept = t.sleeps.slice(sleepsBefore);
        const where = `${JSON.stringify(s)} at step ${i}: ${a.status}, slept ${slept}`;
        // The failures that can count now: those within one window back.
        const recent = failures.filter((f) => t.clock.now - f <= WINDOW).length;
        assert.ok([200, 401, 429].includes(a.status), where);
        assert.notEqual(a.status, s.good ? 401 : 200, where);
        if (recent < FREE) assert.ok(a.status !== 429 && slept.length === 0, where);
        if (s.good && lastWasSuccess.get(s.ip)) {
          assert.ok(a.status === 200 && slept.length === 0, where);
        }
        for (const ms of slept) assert.ok(ms > 0 && ms <= MAX_WAIT, where);
        if (a.status === 429) {
          const retry = Number(a.headers.get("retry-after"));
          assert.ok(Number.isInteger(retry) && retry >= 1, where);
          assert.deepEqual(a.json, { error: "too many failed logins; try again later" });
        } else {
          // The injected sleep returns at once; time moves by what the server waited.
          t.clock.now += slept.reduce((x, y) => x + y, 0);
          if (a.status === 401) failures.push(t.clock.now);
          lastWasSuccess.set(s.ip, a.status === 200);
        }
      }
    }),
    { numRuns: 150 },
  );
});
