// Builds the dashboard figures from the relay metrics and the store, so the composition root only
// passes its metrics object, the store and the start time.

import type { RelayMetrics } from "../metrics/mod.ts";
import type { Store } from "../store/types.ts";
import type { AdminStatus } from "./backend.ts";

export interface StatusSources {
  version: string;
  startedAt: number;
  metrics: RelayMetrics;
  store: Pick<Store, "countAccounts" | "countQueued">;
  /** The iroh relay URL offered in METADATA now, or null. */
  irohUrl?: () => string | null;
  now?: () => number;
  historyMinutes?: number;
}

export function createStatusProvider(sources: StatusSources): () => Promise<AdminStatus> {
  const now = sources.now ?? Date.now;
  return async () => {
    const { metrics } = sources;
    const connections: Record<string, number> = {};
    for (const g of [metrics.smtpConnections, metrics.imapConnections]) {
      for (const { labels, value } of g.values()) connections[labels.listener] = value;
    }
    const [accounts, queued] = await Promise.all([
      sources.store.countAccounts(),
      sources.store.countQueued(),
    ]);
    const rates = metrics.ratesLastMinute();
    const t = now();
    return {
      version: sources.version,
      started_at: sources.startedAt,
      uptime_seconds: Math.max(0, Math.floor((t - sources.startedAt) / 1000)),
      accounts,
      connections,
      idle_sessions: metrics.imapIdleSessions.get(),
      queue_length: queued,
      messages_per_minute: { in: rates.received, out: rates.delivered },
      history: metrics.rateHistory(sources.historyMinutes ?? 30).map((p) => ({
        minute: p.minute,
        in: p.received,
        out: p.delivered,
      })),
      iroh: {
        url: sources.irohUrl?.() ?? null,
        clients: metrics.irohClients.values().reduce((n, v) => n + v.value, 0),
        relayed_packets: metrics.irohRelayedPackets.get(),
        relayed_bytes: metrics.irohRelayedBytes.get(),
        dropped: metrics.irohDropped.total(),
      },
    };
  };
}
