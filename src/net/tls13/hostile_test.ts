// Hostile input, property-tested with fast-check: random bytes in every state, mutated or cut
// records after a real handshake, mutated ClientHellos, and a whole session cut at random
// places. receive() must never throw; it either fails with an alert last in `send` or goes on
// giving only data the client really sent, in order.

import assert from "node:assert/strict";
import fc from "fast-check";
import { PeerAlert } from "./alert.ts";
import { concat } from "./bytes.ts";
import { Tls13ServerSession, type TlsOutput } from "./server.ts";
import { TestClient } from "./test_client.ts";
import { ecdsaCredentials } from "./test_harness.ts";

const { creds } = await ecdsaCredentials();
const text = (s: string) => new TextEncoder().encode(s);

type Stage = "fresh" | "waiting for Finished" | "established";

function sessionAt(stage: Stage) {
  const session = new Tls13ServerSession(creds);
  const client = new TestClient();
  if (stage === "fresh") return { session, client };
  const finished = client.finish(concat(session.receive(client.hello).send));
  if (stage === "established") assert.ok(session.receive(finished).established);
  return { session, client };
}

/** A failed call's last record is an alert: plaintext, or sealed (24 bytes). */
function assertFailedWithAlert(out: TlsOutput): void {
  if (out.error instanceof PeerAlert) return;
  const last = out.send.at(-1);
  assert.ok(last, `no alert sent for ${out.error}`);
  const plainAlert = last[0] === 21 && last.length === 7;
  const sealedAlert = last[0] === 23 && last.length === 5 + 2 + 1 + 16;
  assert.ok(plainAlert || sealedAlert, `last record is not an alert (${out.error})`);
}

/** Feeds chunks; returns the data and the first error, checking the contract on the way. */
function feed(session: Tls13ServerSession, chunks: Uint8Array[]) {
  const data: Uint8Array[] = [];
  let error: Error | null = null;
  for (const chunk of chunks) {
    const out = session.receive(chunk);
    data.push(...out.data);
    if (out.error) {
      if (!error) assertFailedWithAlert(out);
      else assert.equal(out.error, error); // stays failed
      error = out.error;
    }
  }
  return { data: concat(data), error };
}

for (const stage of ["fresh", "waiting for Finished", "established"] as const) {
  Deno.test(`hostile: random bytes when ${stage} never throw`, () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 5 }), (chunks) => {
        const { session } = sessionAt(stage);
        const { data, error } = feed(session, chunks);
        if (stage !== "established") assert.equal(data.length, 0);
        if (error) assert.throws(() => session.seal(text("x")));
      }),
      { numRuns: 150 },
    );
  });
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip"), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("cut"), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert"), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("drop"), at: fc.nat() }),
);

function mutate(bytes: Uint8Array, m: { kind: string; at: number; bit?: number; byte?: number }) {
  const at = m.at % (bytes.length + 1);
  switch (m.kind) {
    case "flip": {
      const out = bytes.slice();
      if (at < out.length) out[at] ^= 1 << m.bit!;
      return out;
    }
    case "cut":
      return bytes.subarray(0, at);
    case "insert":
      return concat([bytes.subarray(0, at), Uint8Array.of(m.byte!), bytes.subarray(at)]);
    default:
      return concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
  }
}

Deno.test("hostile: mutated records after the handshake give an alert or only true data", () => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 6 }),
      mutation,
      fc.boolean(),
      (messages, m, withKeyUpdate) => {
        const { session, client } = sessionAt("established");
        const records = messages.map((s, i) =>
          i === 1 && withKeyUpdate
            ? concat([client.keyUpdate(true), client.data(text(s))])
            : client.data(text(s))
        );
        const original = concat(records);
        const sent = text(messages.join(""));
        const { data, error } = feed(session, [mutate(original, m)]);
        // Whatever got through is a prefix of what the client sent (a record cut short, or
        // made to look longer, waits for more bytes).
        assert.deepEqual([...data], [...sent.subarray(0, data.length)]);
        if (!error && data.length === sent.length) assert.equal(session.established, true);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("hostile: mutated ClientHellos and Finished records never throw", () => {
  fc.assert(
    fc.property(mutation, mutation, (m1, m2) => {
      const session = new Tls13ServerSession(creds);
      const client = new TestClient({ serverName: "x.example", alpn: ["imap"] });
      const first = session.receive(mutate(client.hello, m1));
      if (first.error) return assertFailedWithAlert(first);
      if (first.send.length === 0) return; // cut: waiting for more
      let finished: Uint8Array;
      try {
        finished = client.finish(concat(first.send));
      } catch {
        return; // the mutated hello made the test client's view differ; nothing to check
      }
      const { error } = feed(session, [mutate(finished, m2)]);
      if (error) assert.equal(session.established, false);
    }),
    { numRuns: 200 },
  );
});

Deno.test("hostile: a whole session cut at random places gives the same data", () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat(), { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (helloCuts, restCuts) => {
        const session = new Tls13ServerSession(creds);
        const client = new TestClient({ sessionId: new Uint8Array(32) });
        const split = (bytes: Uint8Array, cuts: number[]) => {
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) =>
            a - b
          );
          const parts: Uint8Array[] = [];
          let from = 0;
          for (const p of points) {
            parts.push(bytes.subarray(from, p));
            from = p;
          }
          parts.push(bytes.subarray(from));
          return parts;
        };
        const flight: Uint8Array[] = [];
        for (const part of split(client.hello, helloCuts)) {
          const out = session.receive(part);
          assert.equal(out.error, null);
          flight.push(...out.send);
        }
        const rest = concat([
          client.finish(concat(flight)),
          client.data(text("a1 CAPABILITY\r\n")),
          client.keyUpdate(true),
          client.data(new Uint8Array(0)),
          client.data(new Uint8Array(15_000).fill(65)),
          client.alert(0),
        ]);
        const data: Uint8Array[] = [];
        let established = 0, closed = 0;
        for (const part of split(rest, restCuts)) {
          const out = session.receive(part);
          assert.equal(out.error, null);
          data.push(...out.data);
          if (out.established) established++;
          if (out.peerClosed) closed++;
        }
        assert.equal(established, 1);
        assert.equal(closed, 1);
        const got = concat(data);
        assert.equal(got.length, 15 + 15_000);
        assert.equal(new TextDecoder().decode(got.subarray(0, 15)), "a1 CAPABILITY\r\n");
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("hostile: 208 KB of records fed one byte at a time", () => {
  // 208 KB of records fed a byte at a time come out whole and in order. (Linearity itself is
  // ByteQueue's doubling buffer; a concatenating one would copy ~1.7 GB here.)
  const { session, client } = sessionAt("established");
  const payload = new Uint8Array(208_000).fill(66);
  const stream = concat(
    Array.from(
      { length: 13 },
      (_, i) => client.data(payload.subarray(i * 16_000, (i + 1) * 16_000)),
    ),
  );
  let n = 0;
  for (let i = 0; i < stream.length; i++) {
    const out = session.receive(stream.subarray(i, i + 1));
    assert.equal(out.error, null);
    for (const d of out.data) n += d.length;
  }
  assert.equal(n, 13 * 16_000);
});
