// tern queue list|show|retry|delete: the outbound queue with each recipient's status.

import { openServices } from "../../app/services.ts";
import { configFrom, parse, UsageError } from "../context.ts";
import type { CliIo } from "../context.ts";
import type { QueueEntry } from "../../store/types.ts";

export const usage = `tern queue list [--status queued|deferred|failed]
tern queue show ID
tern queue retry ID
tern queue delete ID`;

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function summary(e: QueueEntry): string {
  const counts = new Map<string, number>();
  for (const r of e.recipients) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const status = [...counts].map(([s, n]) => `${s} ${n}`).join(", ");
  return `${e.id}\t${iso(e.createdAt)}\t<${e.sender}>\t${e.size} B\t${status}`;
}

function idOf(raw: string | undefined): number {
  const id = Number(raw);
  if (!raw || !Number.isSafeInteger(id) || id <= 0) {
    throw new UsageError(`queue: expected a queue ID, got "${raw ?? ""}"`);
  }
  return id;
}

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { status: { type: "string" } });
  const [sub, raw] = positionals;
  if (!["list", "show", "retry", "delete"].includes(sub ?? "")) {
    throw new UsageError("queue: expected list, show ID, retry ID or delete ID");
  }
  const id = sub === "list" ? 0 : idOf(raw);
  const svc = await openServices(configFrom(values, io));
  const store = svc.store;
  try {
    if (sub === "list") {
      const page = await store.listQueue({
        limit: 1000,
        status: values.status as string | undefined,
      });
      if (page.total === 0) io.out("The queue is empty.");
      for (const e of page.items) io.out(summary(e));
      return 0;
    }
    const entry = await store.getQueueEntry(id);
    if (!entry) {
      io.err(`queue: no entry ${id}`);
      return 1;
    }
    if (sub === "show") {
      io.out(summary(entry));
      for (const r of entry.recipients) {
        const next = r.status === "deferred" || r.status === "queued"
          ? `\tnext ${iso(r.nextAttemptAt)}`
          : "";
        io.out(`  <${r.recipient}>\t${r.status}\tattempts ${r.attempts}${next}`);
        if (r.lastError) io.out(`    ${r.lastError}`);
      }
      return 0;
    }
    if (sub === "retry") {
      await store.retryQueueEntry(id, Date.now());
      io.out(`Entry ${id} is due now; a running relay picks it up within seconds.`);
      return 0;
    }
    await store.deleteQueueEntry(id);
    await store.freeUnreferencedBodies();
    io.out(`Entry ${id} deleted.`);
    return 0;
  } finally {
    await svc.close();
  }
}
