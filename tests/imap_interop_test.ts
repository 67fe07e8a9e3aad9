// Independent IMAP clients against tern over verified TLS: Python's imaplib, mbsync (isync)
// syncing both ways, and getmail6 in IDLE mode receiving a message the moment it is delivered.

import assert from "node:assert/strict";
import { submitEncrypted } from "./support/submit.ts";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { terminate } from "./support/util.ts";
import { requireTool } from "./support/tools.ts";

const dec = new TextDecoder();

async function run(cmd: string, args: string[], stdin?: string) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function withCa<T>(t: TestRelay, fn: (caFile: string, dir: string) => Promise<T>) {
  const dir = await Deno.makeTempDir({ prefix: "tern-imap-interop-" });
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, t.caPem);
    return await fn(`${dir}/ca.pem`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const IMAPLIB = `
import imaplib, json, ssl, sys
cfg = json.loads(sys.stdin.readline())
ctx = ssl.create_default_context(cafile=cfg["ca"])
out = {}
m = imaplib.IMAP4_SSL("127.0.0.1", cfg["port"], ssl_context=ctx)
out["caps"] = list(m.capabilities)
out["login"] = m.login(cfg["user"], cfg["password"])[0]
m.create("Archive")
msg = b"From: a@example.org\\r\\nSubject: imaplib test\\r\\n\\r\\nbody \\xc3\\xa4\\r\\n"
out["append"] = m.append("INBOX", "(\\\\Flagged)", None, msg)[0]
typ, data = m.select("INBOX")
out["exists"] = int(data[0])
typ, data = m.uid("SEARCH", None, "FLAGGED")
out["flagged"] = data[0].decode()
typ, data = m.fetch("1", "(RFC822)")
out["body_ok"] = data[0][1] == msg
typ, data = m.store("1", "+FLAGS", "(\\\\Seen)")
out["store"] = data[0].decode()
out["copy"] = m.copy("1", "Archive")[0]
m.store("1", "+FLAGS", "(\\\\Deleted)")
typ, data = m.expunge()
out["expunged"] = [d.decode() for d in data if d]
typ, data = m.status("Archive", "(MESSAGES)")
out["archive"] = data[0].decode()
typ, data = m.list()
out["list"] = [d.decode() for d in data]
m.logout()
print(json.dumps(out))
`;

const python3Need = requireTool("python3");
Deno.test(
  python3Need.title("Python imaplib: login, append, select, search, fetch, store, copy, expunge"),
  { ignore: python3Need.ignore },
  async () => {
    await withRelay(async (t) => {
      const user = await createAccount(t, "alice0001");
      await withCa(t, async (ca) => {
        const cfg = JSON.stringify({
          ca,
          port: t.addr("imaps").port,
          user: user.address,
          password: user.password,
        });
        const r = await run("python3", ["-c", IMAPLIB], cfg + "\n");
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout);
        assert.ok(out.caps.includes("XCHATMAIL") && out.caps.includes("IDLE"), out.caps.join(" "));
        assert.equal(out.login, "OK");
        assert.equal(out.append, "OK");
        assert.equal(out.exists, 1);
        assert.equal(out.flagged, "1");
        assert.equal(out.body_ok, true);
        assert.match(out.store, /FLAGS \(.*\\Seen/);
        assert.equal(out.copy, "OK");
        assert.deepEqual(out.expunged, ["1"]);
        assert.match(out.archive, /"?Archive"? \(MESSAGES 1\)/);
        assert.ok(out.list.some((l: string) => l.includes("Archive")));
      });
    });
  },
);

const mbsyncNeed = requireTool("mbsync");
Deno.test(mbsyncNeed.title("mbsync (isync) syncs a mailbox both ways"), {
  ignore: mbsyncNeed.ignore,
}, async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    await submitEncrypted(t, a, [b.address]);
    await submitEncrypted(t, a, [b.address]);
    await withCa(t, async (ca, dir) => {
      await Deno.mkdir(`${dir}/mail`, { recursive: true });
      const rc = `${dir}/mbsyncrc`;
      await Deno.writeTextFile(
        rc,
        [
          "IMAPAccount tern",
          "Host 127.0.0.1",
          `Port ${t.addr("imaps").port}`,
          `User ${b.address}`,
          `Pass ${b.password}`,
          "SSLType IMAPS",
          `CertificateFile ${ca}`,
          "",
          "IMAPStore remote",
          "Account tern",
          "",
          "MaildirStore local",
          `Path ${dir}/mail/`,
          `Inbox ${dir}/mail/INBOX`,
          "",
          "Channel inbox",
          "Far :remote:",
          "Near :local:",
          "Patterns INBOX",
          "Create Both",
          "Expunge Both",
          "Sync All",
          `SyncState ${dir}/state/`,
          "",
        ].join("\n"),
      );
      await Deno.mkdir(`${dir}/state`);
      const first = await run("mbsync", ["-c", rc, "-a"]);
      assert.equal(first.code, 0, first.stderr + first.stdout);
      const pulled = [...Deno.readDirSync(`${dir}/mail/INBOX/new`)].length +
        [...Deno.readDirSync(`${dir}/mail/INBOX/cur`)].length;
      assert.equal(pulled, 2, "both messages reached the local maildir");
      // A local message goes up to the server.
      await Deno.writeTextFile(
        `${dir}/mail/INBOX/new/1700000000.local.test`,
        "From: b@example.org\nSubject: from mbsync\n\nlocal body\n",
      );
      const second = await run("mbsync", ["-c", rc, "-a"]);
      assert.equal(second.code, 0, second.stderr + second.stdout);
      const account = (await t.relay.services.store.getAccount(b.address))!;
      const inbox = (await t.relay.services.store.getMailbox(account.id, "INBOX"))!;
      assert.equal(inbox.messages, 3, "the local message was appended on the server");
    });
  });
});

const getmailNeed = requireTool("getmail");
Deno.test(getmailNeed.title("getmail6 --idle receives a message as soon as it is delivered"), {
  ignore: getmailNeed.ignore,
}, async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    await withCa(t, async (ca, dir) => {
      const maildir = `${dir}/Maildir`;
      for (const sub of ["new", "cur", "tmp"]) {
        await Deno.mkdir(`${maildir}/${sub}`, { recursive: true });
        await Deno.chmod(`${maildir}/${sub}`, 0o777);
      }
      // getmail refuses to write mail as root; it then delivers as "nobody".
      const asRoot = Deno.uid() === 0;
      if (asRoot) await Deno.chmod(dir, 0o755);
      await Deno.writeTextFile(
        `${dir}/getmailrc`,
        [
          "[retriever]",
          "type = SimpleIMAPSSLRetriever",
          "server = 127.0.0.1",
          `port = ${t.addr("imaps").port}`,
          `username = ${b.address}`,
          `password = ${b.password}`,
          `ca_certs = ${ca}`,
          'mailboxes = ("INBOX",)',
          "",
          "[destination]",
          "type = Maildir",
          `path = ${maildir}/`,
          ...(asRoot ? ["user = nobody"] : []),
          "",
          "[options]",
          "read_all = false",
          "delete = false",
          "verbose = 0",
          "",
        ].join("\n"),
      );
      const child = new Deno.Command("getmail", {
        args: ["--rcfile", `${dir}/getmailrc`, "--getmaildir", dir, "--idle", "INBOX"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      try {
        // Wait until getmail's session is in IDLE (the relay's own gauge says so).
        const deadline = Date.now() + 20_000;
        const idle = async () => {
          const text = await (await fetch(`http://${t.relay.addresses.metrics}/metrics`)).text();
          return /^tern_imap_idle_sessions 1$/m.test(text);
        };
        while (!(await idle())) {
          if (Date.now() > deadline) throw new Error("getmail never entered IDLE");
          await new Promise((r) => setTimeout(r, 100));
        }
        const started = performance.now();
        await submitEncrypted(t, a, [b.address]);
        let files = 0;
        while (files === 0 && performance.now() - started < 20_000) {
          files = [...Deno.readDirSync(`${maildir}/new`)].length;
          if (!files) await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(files, 1, "getmail stored the message");
        console.log(
          `getmail6 --idle: delivered to maildir in ${Math.round(performance.now() - started)} ms`,
        );
      } finally {
        // output() collects what it wrote; if it exited already, that says why
        const output = child.output();
        await terminate(child, 3000);
        const out = await output;
        const text = dec.decode(out.stdout) + dec.decode(out.stderr);
        if (text.trim()) console.log(`getmail output:\n${text}`);
      }
    });
  }, { overrides: { "listen.metrics": "127.0.0.1:0" } });
});
