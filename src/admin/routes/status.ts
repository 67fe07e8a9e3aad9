// /status (live figures), /push (notification counters) and /certificates (what TLS serves).

import { Hono } from "hono";
import { describeCertificate } from "../../net/mod.ts";
import type { AdminDeps } from "../backend.ts";

const DAY_MS = 86_400_000;

export function statusRoutes(deps: AdminDeps): Hono {
  const app = new Hono();
  const now = deps.now ?? Date.now;

  app.get("/status", async (c) => c.json(await deps.status()));

  app.get("/push", async (c) => {
    return c.json({
      enabled: deps.settings.get("push_enabled") === "true",
      pending_jobs: await deps.store.countPushJobs(),
      sent: deps.metrics ? deps.metrics.pushSent.get() : null,
      failed: deps.metrics ? deps.metrics.pushFailed.get() : null,
    });
  });

  app.get("/certificates", (c) => {
    const t = now();
    const items = deps.certificates().map(({ name, certPem }) => {
      try {
        const info = describeCertificate(certPem);
        return {
          name,
          subject: info.subject,
          issuer: info.issuer,
          names: info.names,
          valid_from: info.validFrom.getTime(),
          valid_to: info.validTo.getTime(),
          days_left: Math.floor((info.validTo.getTime() - t) / DAY_MS),
          self_signed: info.selfSigned,
        };
      } catch (err) {
        deps.log?.warn("cannot parse certificate", { name, err });
        return { name, error: "cannot parse certificate" };
      }
    });
    return c.json({ items });
  });
  return app;
}
