// /queue: outbound messages waiting for delivery, each with per-recipient status; retry now or
// drop an entry; and the queue per destination (what waits, since when, why, how many at once).

import { Hono } from "hono";
import { RelayError } from "../../errors.ts";
import type { QueueEntry } from "../../store/types.ts";
import type { AdminDeps, AdminDestination } from "../backend.ts";
import { badRequest, idParam, numberParam } from "../params.ts";

const STATUSES = ["queued", "deferred", "delivered", "failed"];

export function queueEntryJson(e: QueueEntry) {
  return {
    id: e.id,
    sender: e.sender,
    size: e.size,
    created_at: e.createdAt,
    recipients: e.recipients.map((r) => ({
      recipient: r.recipient,
      domain: r.domain,
      status: r.status,
      attempts: r.attempts,
      next_attempt_at: r.nextAttemptAt,
      last_error: r.lastError,
      updated_at: r.updatedAt,
    })),
  };
}

export function queueRoutes(deps: AdminDeps): Hono {
  const app = new Hono();
  const now = deps.now ?? Date.now;
  const { store } = deps;
  const notFound = (id: number) => new RelayError("not_found", `No queue entry ${id}`);

  app.get("/queue", async (c) => {
    const offset = numberParam(c.req.query("offset"), "offset", { min: 0, max: 1e9, fallback: 0 })!;
    const limit = numberParam(c.req.query("limit"), "limit", { min: 1, max: 500, fallback: 50 })!;
    const status = c.req.query("status") || undefined;
    if (status !== undefined && !STATUSES.includes(status)) {
      throw badRequest(`"status" must be one of ${STATUSES.join(", ")}`);
    }
    const page = await store.listQueue({ offset, limit, status });
    return c.json({ items: page.items.map(queueEntryJson), total: page.total, offset, limit });
  });

  app.get("/queue/destinations", async (c) => {
    const limit = numberParam(c.req.query("limit"), "limit", { min: 1, max: 1000, fallback: 100 })!;
    const list: AdminDestination[] = deps.outbound
      ? await deps.outbound.destinations(limit)
      : (await store.queueDestinations(limit)).map((d) => ({
        ...d,
        state: "open" as const,
        concurrency: 0,
        active: 0,
        retryAt: null,
      }));
    return c.json({
      destinations: list.map((d) => ({
        domain: d.domain,
        pending: d.pending,
        deferred: d.deferred,
        oldest_at: d.oldestAt,
        next_attempt_at: d.nextAttemptAt,
        last_error: d.lastError,
        state: d.state,
        concurrency: d.concurrency,
        active: d.active,
        retry_at: d.retryAt,
      })),
    });
  });

  app.get("/queue/:id", async (c) => {
    const id = idParam(c);
    const e = await store.getQueueEntry(id);
    if (!e) throw notFound(id);
    return c.json(queueEntryJson(e));
  });

  app.post("/queue/:id/retry", async (c) => {
    const id = idParam(c);
    const retried = deps.outbound
      ? await deps.outbound.retryEntry(id)
      : await store.retryQueueEntry(id, now());
    if (!retried) throw notFound(id);
    return c.json({ retried: id });
  });

  app.delete("/queue/:id", async (c) => {
    const id = idParam(c);
    if (!(await store.deleteQueueEntry(id))) throw notFound(id);
    return c.json({ deleted: id });
  });
  return app;
}
