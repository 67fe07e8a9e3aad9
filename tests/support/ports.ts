// Ports for programs that cannot bind port 0 and report it (dnsmasq, pebble, Postfix, Dovecot).
// A port found free can be taken by someone else before the program binds it, and other agents
// run tests on this machine at the same time: ports are drawn at random below the kernel's
// ephemeral range (where port-0 binds and outgoing connections land), and whoever starts the
// program retries with new ports when it reports the address in use (`retryOnAddrInUse`).
// tern itself and test servers written here bind port 0 and report the port instead.

import * as dgram from "node:dgram";
import * as net from "node:net";

/** Below Linux's default ephemeral range (32768–60999), above the well-known services. */
const LOW = 20_000;
const HIGH = 32_767;

function tcpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => s.close(() => resolve(true)));
  });
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    s.once("error", () => {
      s.close();
      resolve(false);
    });
    s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/**
 * `count` distinct ports that were free on 127.0.0.1 a moment ago (TCP, and UDP too with
 * `udp`). The caller must still handle "address in use" (see retryOnAddrInUse).
 */
export async function freePorts(count: number, options: { udp?: boolean } = {}) {
  const out: number[] = [];
  for (let tries = 0; out.length < count; tries++) {
    if (tries > 1000) throw new Error("no free ports found on 127.0.0.1");
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (out.includes(port) || !(await tcpFree(port))) continue;
    if (options.udp && !(await udpFree(port))) continue;
    out.push(port);
  }
  return out;
}

export async function freePort(options: { udp?: boolean } = {}): Promise<number> {
  return (await freePorts(1, options))[0];
}

/** Whether an error (or a program's output carried in its message) says the port was taken. */
export function isAddrInUse(err: unknown): boolean {
  if (err instanceof Deno.errors.AddrInUse) return true;
  const text = `${(err as Error)?.name ?? ""} ${(err as Error)?.message ?? String(err)}`;
  return /EADDRINUSE|AddrInUse|address (already )?in use/i.test(text);
}

/**
 * Runs `start` until it does not fail with "address in use" (at most `attempts` times); `start`
 * draws its ports afresh on each call and cleans up after itself when it throws.
 */
export async function retryOnAddrInUse<T>(start: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await start();
    } catch (err) {
      if (i >= attempts || !isAddrInUse(err)) throw err;
    }
  }
}
