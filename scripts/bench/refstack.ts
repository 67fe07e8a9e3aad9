// The reference stack (Postfix + Dovecot, scripts/refstack) for the benchmark: its start time,
// memory and Dovecot's warnings, on free loopback ports in a state directory of its own.

import { startRefStack as startStack } from "../refstack/refstack.ts";
import type { RefStackOptions } from "../refstack/refstack.ts";
import { now, treeMem } from "./util.ts";
import type { Mem } from "./util.ts";

export interface RefStack {
  dir: string;
  domain: string;
  /** Port of the inbound MTA (chatmail's 25). */
  smtpPort: number;
  submissionsPort: number;
  imapsPort: number;
  caPem: string;
  /** ms from starting Postfix and Dovecot until every listener greeted. */
  startMs: number;
  dovecotPid(): number | null;
  postfixPid(): number | null;
  /** Dovecot's master and all its children (login, imap, lmtp, auth, …). */
  dovecotMem(): Mem;
  /** Postfix and Dovecot together. */
  totalMem(): Mem;
  addUsers(users: { user: string; pass: string }[]): Promise<void>;
  /** Distinct warning and error lines Dovecot logged so far (without timestamps). */
  dovecotWarnings(): string[];
  stop(): Promise<void>;
}

export async function startRefStack(options: RefStackOptions = {}): Promise<RefStack> {
  if (Deno.uid() !== 0) throw new Error("the reference stack needs root");
  const t0 = now();
  const rs = await startStack(options);
  const startMs = now() - t0;
  return {
    dir: rs.dir,
    domain: rs.domain,
    smtpPort: rs.ports.smtp,
    submissionsPort: rs.ports.submissions,
    imapsPort: rs.ports.imaps,
    caPem: rs.caPem,
    startMs,
    dovecotPid: rs.dovecotPid,
    postfixPid: rs.postfixPid,
    dovecotMem: () => treeMem([rs.dovecotPid() ?? -1]),
    totalMem: () => treeMem([rs.dovecotPid() ?? -1, rs.postfixPid() ?? -1]),
    addUsers: (users) => rs.addUsers(users.map((u) => ({ address: u.user, password: u.pass }))),
    dovecotWarnings() {
      const seen = new Map<string, number>();
      for (const line of rs.log().dovecot.split("\n")) {
        if (!/(Warning|Error|Fatal|Panic):/.test(line)) continue;
        // drop the timestamp and anything that names one process, user or session
        const key = line.replace(/^\S+ \S+ /, "").replace(
          /\b(user|UID|pid|session)[ =]\S+/g,
          "$1 …",
        )
          .replace(/<[^>]*>/g, "<…>").replace(/\(\d+\)/g, "(…)").replace(/\d+/g, "N");
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      return [...seen].map(([k, n]) => `${n}× ${k}`);
    },
    stop: rs.stop,
  };
}
