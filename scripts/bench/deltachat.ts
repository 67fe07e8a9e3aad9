// Scenario 6: the real Delta Chat core (2.57) on both servers. Two devices Secure-Join, then one
// message at a time goes A → B; the figure is from the send call to B's IncomingMsg event, i.e.
// what a user sees, client work included. Messages are spaced by more than Delta Chat's own send
// pacing (about one per second after a burst of three).

import { Device, percentile, secureJoin } from "../../tests/support/deltachat.ts";
import { PASS, type Target } from "./scenarios.ts";
import { sleep, userName } from "./util.ts";

export interface DeltaChatResult {
  messages: number;
  secureJoinMs: number;
  p50Ms: number;
  p90Ms: number;
  maxMs: number;
  samplesMs: number[];
  firstError: string;
}

export async function deltachatLatency(
  t: Target,
  opts: { messages: number; log: (m: string) => void },
): Promise<DeltaChatResult> {
  const users = [userName("dca", 1), userName("dcb", 1)];
  await t.ensureUsers(users);
  const server = { imapPort: t.imapPort, smtpPort: t.smtpPort };
  const devices: Device[] = [];
  const samples: number[] = [];
  let firstError = "", secureJoinMs = NaN;
  try {
    for (const [i, user] of users.entries()) {
      const d = await Device.start(`bench-${t.key}-${i}`);
      devices.push(d);
      await d.configure(server, t.addr(user), PASS);
    }
    const [a, b] = devices;
    const j0 = performance.now();
    const chats = await secureJoin(a, b, 60_000);
    secureJoinMs = performance.now() - j0;
    await a.rpc.miscSendTextMessage(a.accountId, chats.inviterChat, "warm-up");
    await b.waitForText("warm-up", 30_000);
    for (let i = 0; i < opts.messages; i++) {
      await sleep(1500);
      const text = `bench ${t.key} ${i}`;
      const s0 = performance.now();
      await a.rpc.miscSendTextMessage(a.accountId, chats.inviterChat, text);
      await b.waitForText(text, 30_000);
      samples.push(performance.now() - s0);
    }
    opts.log(`secure-join ${secureJoinMs.toFixed(0)} ms; ${samples.length} messages`);
  } catch (err) {
    firstError = (err as Error).message.split("\n")[0];
  } finally {
    for (const d of devices) await d.stop();
  }
  return {
    messages: samples.length,
    secureJoinMs,
    p50Ms: samples.length ? percentile(samples, 50) : NaN,
    p90Ms: samples.length ? percentile(samples, 90) : NaN,
    maxMs: samples.length ? Math.max(...samples) : NaN,
    samplesMs: samples.map(Math.round),
    firstError,
  };
}
