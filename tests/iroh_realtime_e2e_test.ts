// Webxdc realtime through tern's embedded iroh relay, with two real Delta Chat cores (2.57, iroh
// 0.35). Each core runs in its own network namespace whose only route leads to tern's address,
// so the cores cannot reach each other directly (nor anything outside): realtime data can only
// flow through the relay. Needs root for `ip netns`; ignored otherwise.

import assert from "node:assert/strict";
import zlib from "node:zlib";
import { newAccount, startTern, type TernProcess } from "./support/tern_process.ts";
import { Device, secureJoin } from "./support/deltachat.ts";

const dec = new TextDecoder();

function run(args: string[]): { ok: boolean; out: string } {
  try {
    const r = new Deno.Command(args[0], { args: args.slice(1), stdout: "piped", stderr: "piped" })
      .outputSync();
    return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
  } catch (err) {
    return { ok: false, out: (err as Error).message };
  }
}

function must(args: string[]): string {
  const r = run(args);
  if (!r.ok) throw new Error(`${args.join(" ")} failed: ${r.out}`);
  return r.out;
}

/** Whether this process may create network namespaces (root with CAP_SYS_ADMIN and `ip`). */
function canUseNetns(): boolean {
  if (Deno.uid() !== 0) return false;
  const name = `ternprobe${crypto.randomUUID().slice(0, 6)}`;
  if (!run(["ip", "netns", "add", name]).ok) return false;
  run(["ip", "netns", "del", name]);
  return true;
}

/**
 * Two namespaces, each linked to the host by a veth pair. Tern listens on the host end of the
 * first link (`tern`); the second namespace has a host route to that address and nothing else.
 * No namespace has a default route, and the host does not forward between them.
 */
class Namespaces {
  readonly tern: string;
  readonly a: string;
  readonly b: string;
  readonly #links: string[];

  constructor() {
    const id = crypto.randomUUID().replaceAll("-", "").slice(0, 6);
    const net = `10.${200 + Math.floor(Math.random() * 50)}.${1 + Math.floor(Math.random() * 250)}`;
    this.a = `tern-a-${id}`;
    this.b = `tern-b-${id}`;
    this.tern = `${net}.1`;
    this.#links = [`ti${id}a`, `ti${id}b`];
    const [la, lb] = this.#links;
    try {
      for (
        const [ns, link, host, peer] of [[this.a, la, `${net}.1`, `${net}.2`], [
          this.b,
          lb,
          `${net}.5`,
          `${net}.6`,
        ]]
      ) {
        must(["ip", "netns", "add", ns]);
        must(["ip", "link", "add", link, "type", "veth", "peer", "name", `${link}n`]);
        must(["ip", "link", "set", `${link}n`, "netns", ns]);
        must(["ip", "addr", "add", `${host}/30`, "dev", link]);
        must(["ip", "link", "set", link, "up"]);
        must(["ip", "-n", ns, "addr", "add", `${peer}/30`, "dev", `${link}n`]);
        must(["ip", "-n", ns, "link", "set", `${link}n`, "up"]);
        must(["ip", "-n", ns, "link", "set", "lo", "up"]);
      }
      must(["ip", "-n", this.b, "route", "add", `${this.tern}/32`, "via", `${net}.5`]);
    } catch (err) {
      this.remove();
      throw err;
    }
  }

  /** The IPv4 and IPv6 routes of a namespace, for the isolation checks. */
  routes(ns: string): string {
    return must(["ip", "-n", ns, "route", "show"]) + must(["ip", "-n", ns, "-6", "route", "show"]);
  }

  reaches(ns: string, address: string): boolean {
    return run(["ip", "-n", ns, "route", "get", address]).ok;
  }

  peerAddress(ns: string): string {
    const m = /inet (\S+)\//.exec(must(["ip", "-n", ns, "-4", "addr", "show", "scope", "global"]));
    if (!m) throw new Error(`no address in ${ns}`);
    return m[1];
  }

  remove() {
    for (const ns of [this.a, this.b]) run(["ip", "netns", "del", ns]);
    for (const link of this.#links) run(["ip", "link", "del", link]);
  }
}

/** A stored (uncompressed) zip: enough for a webxdc app. */
function zip(files: Record<string, string>): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, text] of Object.entries(files)) {
    const nameBytes = enc.encode(name);
    const data = enc.encode(text);
    const crc = zlib.crc32(data);
    const local = new Uint8Array(30 + nameBytes.length + data.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 10, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);
    local.set(data, 30 + nameBytes.length);
    const central = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 10, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    central.set(nameBytes, 46);
    locals.push(local);
    centrals.push(central);
    offset += local.length;
  }
  const centralSize = centrals.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, centrals.length, true);
  ev.setUint16(10, centrals.length, true);
  ev.setUint32(12, centralSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + centralSize + 22);
  let off = 0;
  for (const part of [...locals, ...centrals, end]) {
    out.set(part, off);
    off += part.length;
  }
  return out;
}

async function adminStatus(tern: TernProcess) {
  const token = (await Deno.readTextFile(`${tern.dataDir}/admin_token`)).trim();
  // The admin API is served over HTTPS only (port 80 redirects).
  using client = Deno.createHttpClient({ caCerts: [tern.caPem] });
  const r = await fetch(`https://${tern.listen.https}/api/admin/status`, {
    headers: { authorization: `Bearer ${token}` },
    client,
  });
  assert.equal(r.status, 200);
  return await r.json();
}

async function metricsOf(tern: TernProcess): Promise<string> {
  const r = await fetch(`http://${tern.listen.metrics}/metrics`);
  return await r.text();
}

/** Sends `data` from one core until the other reports it as realtime data (or the deadline). */
async function deliverRealtime(
  from: Device,
  fromMsg: number,
  to: Device,
  toMsg: number,
  data: number[],
  timeoutMs: number,
) {
  const got = to.waitFor(
    "WebxdcRealtimeData",
    (e) =>
      e.msgId === toMsg && e.data.length === data.length && e.data.every((b, i) => b === data[i]),
    timeoutMs,
    `realtime data ${JSON.stringify(data.slice(0, 4))}… from ${from.name}`,
  );
  let received = false;
  got.then(() => (received = true), () => {});
  const sending = (async () => {
    while (!received) {
      await from.rpc.sendWebxdcRealtimeData(from.accountId, fromMsg, data).catch(() => {});
      await Promise.race([got.catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
    }
  })();
  try {
    await got;
  } finally {
    received = true;
    await sending;
  }
}

const NETNS = canUseNetns();

let phaseStart = performance.now();
/** One line per phase with its duration, so a slow run shows where the time went. */
function phase(name: string) {
  const now = performance.now();
  console.log(`iroh e2e: ${name} (${Math.round(now - phaseStart)} ms)`);
  phaseStart = now;
}

Deno.test({
  name: "Delta Chat webxdc realtime data flows through tern's iroh relay between isolated cores" +
    (NETNS ? "" : " (ignored: needs root and `ip netns` to isolate the cores)"),
  ignore: !NETNS,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const net = new Namespaces();
    let tern: TernProcess | null = null;
    const devices: Device[] = [];
    const files = await Deno.makeTempDir({ prefix: "tern-iroh-e2e-" });
    try {
      // Direct paths are impossible by construction: check it before relying on it.
      for (const ns of [net.a, net.b]) assert.doesNotMatch(net.routes(ns), /default/);
      assert.equal(net.reaches(net.a, net.peerAddress(net.b)), false, "a cannot reach b");
      assert.equal(net.reaches(net.b, net.peerAddress(net.a)), false, "b cannot reach a");
      assert.equal(net.reaches(net.a, "1.1.1.1"), false, "nothing outside is reachable");
      assert.equal(net.reaches(net.b, "2606:4700:4700::1111"), false, "nor over IPv6");

      phaseStart = performance.now();
      tern = await startTern("turn_port = 0", {
        ip: net.tern,
        listen: { metrics: `${net.tern}:0` },
      });
      const t = tern;
      const dclogin = async () => (await newAccount(t)).dclogin_url;
      const alice = await Device.start("alice", { netns: net.a });
      devices.push(alice);
      const bob = await Device.start("bob", { netns: net.b });
      devices.push(bob);
      for (const d of [alice, bob]) {
        await d.rpc.setConfig(d.accountId, "webxdc_realtime_enabled", "1");
        await d.configureFromQr(await dclogin());
      }
      phase("two cores configured in their namespaces");
      const { inviterChat } = await secureJoin(alice, bob, 60_000);
      phase("Secure-Join");

      const xdc = `${files}/realtime.xdc`;
      await Deno.writeFile(
        xdc,
        zip({
          "manifest.toml": 'name = "realtime"\n',
          "index.html": "<!doctype html><title>realtime</title><script src=webxdc.js></script>",
        }),
      );
      const incoming = bob.waitFor("IncomingMsg", () => true, 60_000, "the webxdc app");
      const aliceMsg = await alice.rpc.sendMsg(alice.accountId, inviterChat, {
        text: "play",
        html: null,
        viewtype: "Webxdc",
        file: xdc,
        filename: "realtime.xdc",
        location: null,
        overrideSenderName: null,
        quotedMessageId: null,
        quotedText: null,
      });
      const bobMsg = (await incoming).msgId;
      assert.equal((await bob.rpc.getMessage(bob.accountId, bobMsg)).viewType, "Webxdc");
      phase("webxdc app delivered");

      // Each side announces its iroh endpoint (relay URL + key) to the other by mail.
      const bobHeard = bob.waitFor(
        "WebxdcRealtimeAdvertisementReceived",
        (e) => e.msgId === bobMsg,
        60_000,
      );
      const aliceHeard = alice.waitFor(
        "WebxdcRealtimeAdvertisementReceived",
        (e) => e.msgId === aliceMsg,
        60_000,
      );
      await alice.rpc.sendWebxdcRealtimeAdvertisement(alice.accountId, aliceMsg);
      await bob.rpc.sendWebxdcRealtimeAdvertisement(bob.accountId, bobMsg);
      await Promise.all([bobHeard, aliceHeard]);
      phase("realtime advertisements exchanged");

      await deliverRealtime(alice, aliceMsg, bob, bobMsg, [1, 2, 3, 42], 90_000);
      phase("realtime data alice → bob");
      const big = Array.from({ length: 20_000 }, (_, i) => (i * 7) & 0xff);
      await deliverRealtime(bob, bobMsg, alice, aliceMsg, big, 90_000);
      phase("20 kB of realtime data bob → alice");

      // Both cores use tern's relay (the only one they can reach), and it carried the data.
      const status = await adminStatus(t);
      assert.equal(status.iroh.url, `http://${t.listen.http}`);
      assert.ok(status.iroh.clients >= 2, `relay clients: ${status.iroh.clients}`);
      assert.ok(status.iroh.relayed_bytes > big.length, `relayed: ${status.iroh.relayed_bytes}`);
      const metrics = await metricsOf(t);
      assert.match(metrics, /^tern_iroh_clients\{protocol="relay"\} [2-9]/m);
      assert.match(metrics, /^tern_iroh_relayed_packets_total [1-9]/m);
    } catch (err) {
      console.log(`tern log:\n${tern?.stderr().slice(-20000)}`);
      for (const d of devices) console.log(`--- ${d.name}\n${d.log()}`);
      throw err;
    } finally {
      for (const d of devices) await d.stop();
      await tern?.stop();
      net.remove();
      await Deno.remove(files, { recursive: true });
    }
  },
});
