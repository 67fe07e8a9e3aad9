// Builds the dashboard figures from the relay metrics and the store, so the composition root only
// passes its metrics object, the store and the start time.

import type { RelayMetrics } from "../metrics/mod.ts";
import type { Store } from "../store/types.ts";
import type { AdminStatus } from "./backend.ts";

/** One instance's live figures (app/cluster.ts gathers them). */
export interface InstanceFigures {
  id: string;
  host: string;
  startedAt: number;
  connections: Record<string, number>;
  idleSessions: number;
  messagesPerMinute: { in: number; out: number };
  history: { minute: number; in: number; out: number }[];
  seenAt: number;
}

export interface StatusSources {
  version: string;
  startedAt: number;
  metrics: RelayMetrics;
  store: Pick<Store, "countAccounts" | "countQueued">;
  /** The iroh relay URL offered in METADATA now, or null. */
  irohUrl?: () => string | null;
  /** Several instances on one store: every instance's figures, this one first. */
  instances?: () => InstanceFigures[];
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
    let history = metrics.rateHistory(sources.historyMinutes ?? 30).map((p) => ({
      minute: p.minute,
      in: p.received,
      out: p.delivered,
    }));
    let idle = metrics.imapIdleSessions.get();
    let perMinute = { in: rates.received, out: rates.delivered };
    const instances = sources.instances?.();
    if (instances && instances.length) {
      // Figures of the whole relay: the sums over its instances.
      const byMinute = new Map<number, { minute: number; in: number; out: number }>();
      for (const key of Object.keys(connections)) connections[key] = 0;
      idle = 0;
      perMinute = { in: 0, out: 0 };
      for (const i of instances) {
        for (const [k, v] of Object.entries(i.connections)) {
          connections[k] = (connections[k] ?? 0) + v;
        }
        idle += i.idleSessions;
        perMinute.in += i.messagesPerMinute.in;
        perMinute.out += i.messagesPerMinute.out;
        for (const p of i.history) {
          const m = byMinute.get(p.minute) ?? { minute: p.minute, in: 0, out: 0 };
          m.in += p.in;
          m.out += p.out;
          byMinute.set(p.minute, m);
        }
      }
      history = [...byMinute.values()].sort((a, b) => a.minute - b.minute)
        .slice(-(sources.historyMinutes ?? 30));
    }
    return {
      version: sources.version,
      started_at: sources.startedAt,
      uptime_seconds: Math.max(0, Math.floor((t - sources.startedAt) / 1000)),
      accounts,
      connections,
      idle_sessions: idle,
      queue_length: queued,
      messages_per_minute: perMinute,
      history,
      ...(instances
        ? {
          instances: instances.map((i) => ({
            id: i.id,
            host: i.host,
            started_at: i.startedAt,
            connections: i.connections,
            idle_sessions: i.idleSessions,
            messages_per_minute: i.messagesPerMinute,
            age_ms: Math.max(0, Date.now() - i.seenAt),
          })),
        }
        : {}),
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
