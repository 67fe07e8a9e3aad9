// Adapts the account and delivery services to the SMTP edge's narrow backend interface, mapping
// domain errors to the reference relay's SMTP replies.

import { isRelayError, isStorageFull } from "../errors.ts";
import type { SmtpBackend, SmtpReply } from "../smtp/mod.ts";
import type { Services } from "./services.ts";
import type { Logger } from "../log/mod.ts";
import type { RelayMetrics } from "../metrics/mod.ts";
import type { DeliveryReport } from "../delivery/mod.ts";

export function smtpBackend(services: Services, log: Logger, metrics?: RelayMetrics): SmtpBackend {
  const { accounts, delivery } = services;
  const record = (started: number, r: DeliveryReport) => {
    if (!metrics || r.delivered === 0) return r.reply;
    metrics.deliveries.inc({ target: "local", outcome: "delivered" }, r.delivered);
    metrics.deliveryLatency.observe((performance.now() - started) / 1000, { target: "local" });
    return r.reply;
  };
  return {
    async authenticate(user, password, ip, authzid) {
      try {
        const account = await accounts.authenticate(user, password, { ip, authzid });
        return { address: account.address };
      } catch (err) {
        if (isRelayError(err, "rate_limited")) {
          return { reply: { code: 454, enhanced: "4.7.0", text: err.message } };
        }
        if (isRelayError(err)) {
          return {
            reply: { code: 535, enhanced: "5.7.8", text: "Authentication credentials invalid" },
          };
        }
        log.error("smtp authentication failed", { error: String(err) });
        return {
          reply: { code: 454, enhanced: "4.7.0", text: "Temporary authentication failure" },
        };
      }
    },
    checkSender: (login, mailFrom) => delivery.checkSubmissionSender(login, mailFrom),
    checkRecipient: (address, mode) => delivery.checkRecipient(address, mode),
    beginData(envelope, login) {
      const tx = login
        ? delivery.beginSubmission(login, envelope)
        : delivery.beginReceive(envelope);
      return {
        write: (chunk, text) => tx.write(chunk, text),
        async end() {
          const started = performance.now();
          try {
            return record(started, await tx.end());
          } catch (err) {
            return storageFailure(err, log);
          }
        },
        async abort() {
          try {
            await tx.abort();
          } catch (err) {
            log.debug("smtp data: freeing an aborted message failed", { error: String(err) });
          }
        },
      };
    },
  };
}

/**
 * Nothing was stored (each delivery is one transaction): a temporary reply makes the sender try
 * again later, and the session stays usable.
 */
export function storageFailure(err: unknown, log: Logger): SmtpReply {
  const message = (err as Error)?.message ?? String(err);
  if (isStorageFull(err)) {
    log.error("storage full or read-only: mail refused for now", { error: message });
    return { code: 452, enhanced: "4.3.1", text: "Insufficient system storage, try again later" };
  }
  log.error("delivery failed", { error: message });
  return { code: 451, enhanced: "4.3.0", text: "Local error in processing, try again later" };
}
