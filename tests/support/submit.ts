// Submits one encrypted (PGP/MIME) message over implicit-TLS submission and expects 250.

import assert from "node:assert/strict";
import type { TestRelay } from "./relay.ts";
import { SmtpTestClient } from "./smtp_client.ts";
import { encryptedMessage } from "./messages.ts";

export async function submitEncrypted(
  t: TestRelay,
  from: { address: string; password: string },
  to: string[],
): Promise<void> {
  const c = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
  await c.reply();
  await c.cmd("EHLO client.test");
  await c.login(from.address, from.password);
  const r = await c.sendMail(from.address, to, await encryptedMessage(from.address, to[0]));
  c.close();
  assert.equal(r.code, 250, r.text);
}
