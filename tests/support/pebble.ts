// A real ACME server for tests: Debian's pebble, resolving names through a local dnsmasq that
// points every name under the given zones at 127.0.0.1, so pebble's HTTP-01 validation reaches
// the test's challenge server on httpPort.

import * as net from "node:net";
import { generateSelfSigned } from "../../src/net/mod.ts";

export interface Pebble {
  directoryUrl: string;
  /** CA of pebble's own API certificate (for the ACME client). */
  apiCaPem: string;
  /** Root that pebble's issued certificates chain to (management /roots/0). */
  root(): Promise<string>;
  /** Stops pebble only (the failure test); stop() ends the rest. */
  stopPebble(): Promise<void>;
  stop(): Promise<void>;
  /** What pebble printed (for failure messages). */
  output(): string;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const dec = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) text += dec.decode(chunk, { stream: true });
  })().catch(() => {});
  return { text: () => text, done };
}

export async function startPebble(options: { httpPort: number; zones: string[] }): Promise<Pebble> {
  const dir = await Deno.makeTempDir({ prefix: "tern-pebble-" });
  const [dnsPort, apiPort, mgmtPort, tlsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const api = await generateSelfSigned(["127.0.0.1", "localhost"]);
  await Deno.writeTextFile(`${dir}/api-cert.pem`, api.certPem);
  await Deno.writeTextFile(`${dir}/api-key.pem`, api.keyPem);
  await Deno.writeTextFile(
    `${dir}/pebble.json`,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${apiPort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: `${dir}/api-cert.pem`,
        privateKey: `${dir}/api-key.pem`,
        httpPort: options.httpPort,
        tlsPort,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );

  const dnsmasq = new Deno.Command("dnsmasq", {
    args: [
      "--no-daemon",
      `--port=${dnsPort}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      ...options.zones.map((z) => `--address=/${z}/127.0.0.1`),
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const dnsLog = collect(dnsmasq.stderr);

  let pebble: Deno.ChildProcess | null = new Deno.Command("pebble", {
    args: ["-config", `${dir}/pebble.json`, "-dnsserver", `127.0.0.1:${dnsPort}`],
    env: { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = collect(pebble.stdout);
  const err = collect(pebble.stderr);

  const client = Deno.createHttpClient({ caCerts: [api.caPem!] });
  const stopPebble = async () => {
    if (!pebble) return;
    try {
      pebble.kill("SIGTERM");
    } catch { /* already gone */ }
    await pebble.status;
    await Promise.all([out.done, err.done]);
    pebble = null;
  };
  const stop = async () => {
    await stopPebble();
    try {
      dnsmasq.kill("SIGTERM");
    } catch { /* already gone */ }
    await dnsmasq.status;
    await dnsLog.done;
    client.close();
    await Deno.remove(dir, { recursive: true });
  };

  const directoryUrl = `https://127.0.0.1:${apiPort}/dir`;
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const r = await fetch(directoryUrl, { client });
        await r.body?.cancel();
        if (r.ok) break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
      }
      if (Date.now() > deadline) throw new Error("pebble did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    const printed = out.text() + err.text();
    await stop();
    throw new Error(`pebble did not start: ${e}\n${printed}`);
  }

  return {
    directoryUrl,
    apiCaPem: api.caPem!,
    async root() {
      const r = await fetch(`https://127.0.0.1:${mgmtPort}/roots/0`, { client });
      if (!r.ok) throw new Error(`pebble /roots/0: ${r.status}`);
      return await r.text();
    },
    stopPebble,
    stop,
    output: () => out.text() + err.text() + dnsLog.text(),
  };
}
