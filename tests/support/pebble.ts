// A real ACME server for tests: Debian's pebble, resolving names through a local dnsmasq that
// points every name under the given zones at 127.0.0.1, so pebble's HTTP-01 validation reaches
// the test's challenge server on httpPort.

import { generateSelfSigned } from "../../src/net/mod.ts";
import { dnsmasqNeed, startDnsmasq } from "./dnsmasq.ts";
import { freePorts, retryOnAddrInUse } from "./ports.ts";
import { requireAll, requireTool } from "./tools.ts";

export const pebbleNeed = requireAll(requireTool("pebble"), dnsmasqNeed);

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

function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const dec = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) text += dec.decode(chunk, { stream: true });
  })().catch(() => {});
  return { text: () => text, done };
}

export async function startPebble(options: { httpPort: number; zones: string[] }): Promise<Pebble> {
  const dnsmasq = await startDnsmasq(options.zones.map((z) => `--address=/${z}/127.0.0.1`));
  try {
    return await retryOnAddrInUse(() => startPebbleOn(dnsmasq, options.httpPort));
  } catch (err) {
    await dnsmasq.stop();
    throw err;
  }
}

async function startPebbleOn(
  dnsmasq: Awaited<ReturnType<typeof startDnsmasq>>,
  httpPort: number,
): Promise<Pebble> {
  const dir = await Deno.makeTempDir({ prefix: "tern-pebble-" });
  const [apiPort, mgmtPort, tlsPort] = await freePorts(3);
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
        httpPort,
        tlsPort,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );

  let pebble: Deno.ChildProcess | null = new Deno.Command("pebble", {
    args: ["-config", `${dir}/pebble.json`, "-dnsserver", dnsmasq.server],
    env: { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = collect(pebble.stdout);
  const err = collect(pebble.stderr);
  let exited = false;
  const status = pebble.status.then(() => {
    exited = true;
  });

  const client = Deno.createHttpClient({ caCerts: [api.caPem!] });
  const stopPebble = async () => {
    if (!pebble) return;
    try {
      pebble.kill("SIGTERM");
    } catch { /* already gone */ }
    await status;
    await Promise.all([out.done, err.done]);
    pebble = null;
  };
  const stop = async () => {
    await stopPebble();
    await dnsmasq.stop();
    client.close();
    await Deno.remove(dir, { recursive: true });
  };

  const directoryUrl = `https://127.0.0.1:${apiPort}/dir`;
  // Pebble is up when its directory answers; if it exits first (a port taken), say why.
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const r = await fetch(directoryUrl, { client });
      await r.body?.cancel();
      if (r.ok) break;
      throw new Error(`directory answered HTTP ${r.status}`);
    } catch (e) {
      if (exited || Date.now() > deadline) {
        await stopPebble();
        client.close();
        await Deno.remove(dir, { recursive: true });
        throw new Error(`pebble did not start: ${e}\n${out.text()}${err.text()}`);
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([status, new Promise((r) => timer = setTimeout(r, 50))]);
    clearTimeout(timer);
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
    output: () => out.text() + err.text() + dnsmasq.output(),
  };
}
