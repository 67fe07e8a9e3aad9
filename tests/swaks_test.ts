// A real foreign SMTP client: swaks (Debian) submits over 465 (implicit TLS) and 587 (STARTTLS)
// with AUTH PLAIN and LOGIN; cleartext is refused with 523 and never stored.

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { encryptedMessage, plainMessage } from "./support/messages.ts";
import { requireTool } from "./support/tools.ts";

const dec = new TextDecoder();

async function swaks(args: string[]): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("swaks", { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function inboxCount(t: TestRelay, address: string): Promise<number> {
  const account = (await t.relay.services.store.getAccount(address))!;
  return (await t.relay.services.store.getMailbox(account.id, "INBOX"))!.messages;
}

const need = requireTool("swaks");

Deno.test(
  need.title("swaks submits over 465 and 587 with AUTH; cleartext gets 523"),
  { ignore: need.ignore },
  async () => {
    await withRelay(async (t) => {
      const a = await createAccount(t, "alice0001");
      const b = await createAccount(t, "bobby0001");
      const file = await Deno.makeTempFile({ suffix: ".eml" });
      const plainFile = await Deno.makeTempFile({ suffix: ".eml" });
      try {
        await Deno.writeTextFile(file, await encryptedMessage(a.address, b.address));
        await Deno.writeTextFile(plainFile, plainMessage(a.address, b.address));
        const common = (port: number) => [
          "--server",
          "127.0.0.1",
          "--port",
          String(port),
          "--auth-user",
          a.address,
          "--auth-password",
          a.password,
          "--from",
          a.address,
          "--to",
          b.address,
          "--helo",
          "client.test",
        ];
        const implicit = await swaks([
          ...common(t.addr("submissions").port),
          "--tls-on-connect",
          "--auth",
          "PLAIN",
          "--data",
          `@${file}`,
        ]);
        assert.equal(implicit.code, 0, implicit.output);
        const starttls = await swaks([
          ...common(t.addr("submission").port),
          "--tls",
          "--auth",
          "LOGIN",
          "--data",
          `@${file}`,
        ]);
        assert.equal(starttls.code, 0, starttls.output);
        assert.equal(await inboxCount(t, b.address), 2);

        const refused = await swaks([
          ...common(t.addr("submissions").port),
          "--tls-on-connect",
          "--auth",
          "PLAIN",
          "--data",
          `@${plainFile}`,
        ]);
        assert.notEqual(refused.code, 0);
        assert.match(refused.output, /523 Encryption Needed: Invalid Unencrypted Mail/);
        assert.equal(await inboxCount(t, b.address), 2);
      } finally {
        await Deno.remove(file);
        await Deno.remove(plainFile);
      }
    });
  },
);
