// A local DNS server for tests (Debian's dnsmasq) answering only from the records it is given:
// no upstream servers, no /etc/hosts. start() returns once it answers a query, not after a sleep.

import { freePort, retryOnAddrInUse } from "./ports.ts";
import { requireTool } from "./tools.ts";

export const dnsmasqNeed = requireTool("dnsmasq");

export interface Dnsmasq {
  port: number;
  /** "127.0.0.1:port", for dns_server or systemResolver(). */
  server: string;
  /** What dnsmasq printed (its log goes to stderr), for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/** The name every instance answers, so start() can tell when it is serving. */
const READY = "ready.dnsmasq.test";

/**
 * Starts dnsmasq with `records`: its own options such as `--address=/tern.test/127.0.0.1`,
 * `--mx-host=…`, `--txt-record=…`, `--ptr-record=…`.
 */
export function startDnsmasq(records: string[], timeoutMs = 15_000): Promise<Dnsmasq> {
  return retryOnAddrInUse(async () => {
    const port = await freePort({ udp: true });
    const child = new Deno.Command("dnsmasq", {
      args: [
        "--no-daemon",
        "--pid-file=",
        `--port=${port}`,
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--log-facility=-",
        `--txt-record=${READY},ready`,
        ...records,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let text = "";
    const dec = new TextDecoder();
    const logDone = (async () => {
      for await (const chunk of child.stderr) text += dec.decode(chunk, { stream: true });
    })();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const stop = async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await status;
      await logDone;
    };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited) {
        await stop();
        throw new Error(`dnsmasq exited (${(await status).code}): ${text.trim()}`);
      }
      try {
        const [answer] = await Deno.resolveDns(READY, "TXT", {
          nameServer: { ipAddr: "127.0.0.1", port },
        });
        if (answer?.join("") === "ready") break;
      } catch (err) {
        if (Date.now() > deadline) {
          await stop();
          throw new Error(`dnsmasq on port ${port} did not answer: ${err}\n${text}`);
        }
      }
      // Not answering yet, or just exited (then the next round reports why): ask again soon.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([status, new Promise((r) => timer = setTimeout(r, 20))]);
      clearTimeout(timer);
    }
    return { port, server: `127.0.0.1:${port}`, output: () => text, stop };
  });
}
