import { createAccount, withRelay } from "/work/wt-fed/tests/support/relay.ts";
import { encryptedMessage } from "/work/wt-fed/tests/support/messages.ts";
const N = Number(Deno.args[0] ?? 500);
const listen = (ip: string) => ({
  "listen.smtp": `${ip}:0`, "listen.submission": `${ip}:0`, "listen.submissions": `${ip}:0`,
  "listen.imap": `${ip}:0`, "listen.imaps": `${ip}:0`, "listen.http": `${ip}:0`, "listen.https": `${ip}:0`, turn_port: 0,
});
const ports: Record<string, { smtp: number; https: number }> = {};
await withRelay(async (b) => {
  ports["127.0.0.3"] = { smtp: b.addr("smtp").port, https: Number(b.relay.addresses.https!.split(":").pop()) };
  await withRelay(async (a) => {
    const alice = await createAccount(a, "alice0001");
    const bobs = [];
    for (let i = 0; i < 50; i++) bobs.push(await createAccount(b, `bob${String(i).padStart(6, "0")}`));
    const msg = new TextEncoder().encode((await encryptedMessage(alice.address, bobs[0].address)));
    const store = b.relay.services.store;
    const count = async () => { let n = 0; for (const bb of bobs) { const acc = (await store.getAccount(bb.address))!; n += (await store.getMailbox(acc.id, "INBOX"))!.messages; } return n; };
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const rep = await a.relay.services.delivery.submit(alice.address, { mailFrom: alice.address, recipients: [bobs[i % 50].address] }, msg); if (rep.reply.code !== 250) throw new Error(JSON.stringify(rep.reply));
    }
    const t1 = performance.now();
    while ((await count()) < N) await new Promise((r) => setTimeout(r, 20));
    const t2 = performance.now();
    console.log(`submit ${N} in ${(t1 - t0).toFixed(0)} ms (${(N / (t1 - t0) * 1000).toFixed(0)}/s); all landed after ${(t2 - t0).toFixed(0)} ms (${(N / (t2 - t0) * 1000).toFixed(0)}/s), drain ${(t2 - t1).toFixed(0)} ms`);
  }, { overrides: { domain: "127.0.0.2", ...listen("127.0.0.2"), max_user_send_per_minute: 1e6, max_user_send_burst_size: 1e6 }, relay: { federation: { ports: (addr: string) => ports[addr] } } });
}, { overrides: { domain: "127.0.0.3", ...listen("127.0.0.3") } });
