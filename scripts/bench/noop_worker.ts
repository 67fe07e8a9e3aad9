// The NOOP probe's thread (noop_probe.ts): logs in, selects INBOX, sends NOOP every 5 ms until
// told to stop, then posts the round-trip times.

/// <reference lib="deno.worker" />

import { Imap } from "./clients.ts";
import type { NoopProbeTarget } from "./noop_probe.ts";
import { now, sleep } from "./util.ts";

let stopping = false;

self.onmessage = async (e: MessageEvent) => {
  const m = e.data as NoopProbeTarget | { stop: true };
  if ("stop" in m) {
    stopping = true;
    return;
  }
  let c: Imap | null = null;
  try {
    c = await Imap.connect(m.imapPort, m.caPem);
    await c.login(m.address, m.password);
    await c.select();
    await c.cmd("NOOP", false);
    self.postMessage({ ready: true });
    const times: number[] = [];
    while (!stopping) {
      const t0 = now();
      await c.cmd("NOOP", false);
      times.push(now() - t0);
      await sleep(5);
    }
    self.postMessage({ times });
  } catch (err) {
    self.postMessage({ error: (err as Error).message });
  } finally {
    c?.close();
  }
};
