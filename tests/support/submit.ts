// Submits one encrypted (PGP/MIME) message over implicit-TLS submission and expects 250; returns
// the message as submitted.

import assert from "node:assert/strict";
import type { TestRelay } from "./relay.ts";
import { SmtpTestClient } from "./smtp_client.ts";
import { encryptedMessage } from "./messages.ts";

export async function submitEncrypted(
  t: TestRelay,
  from: { address: string; password: string },
  to: string[],
  text?: string,
): Promise<string> {
  const c = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
  await c.reply();
  await c.cmd("EHLO client.test");
  await c.login(from.address, from.password);
  const message = await encryptedMessage(from.address, to[0], text);
  const r = await c.sendMail(from.address, to, message);
  c.close();
  assert.equal(r.code, 250, r.text);
  return message;
}
