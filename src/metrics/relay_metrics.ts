// The relay's metrics, predefined in one place: protocol edges and workers receive this object and
// update the fields they own; /metrics renders the registry, the admin status reads the rates.

import { MetricsRegistry } from "./registry.ts";
import type { Counter, Gauge, Histogram } from "./registry.ts";
import { MinuteSeries } from "./minute_series.ts";
import type { MinutePoint } from "./minute_series.ts";

export type SmtpListener = "smtp" | "submission" | "submissions";
export type ImapListener = "imap" | "imaps";
export type ReplyClass = "2xx" | "4xx" | "5xx";
export type DeliveryTarget = "local" | "remote";
export type DeliveryOutcome = "delivered" | "deferred" | "failed" | "rejected";

/** Latency buckets in seconds: local delivery is milliseconds, remote may take minutes. */
export const DELIVERY_LATENCY_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  300,
];

export interface RelayMetrics {
  readonly registry: MetricsRegistry;
  /** SMTP sessions opened, by listener. */
  readonly smtpSessions: Counter<"listener">;
  /** SMTP connections open now, by listener. */
  readonly smtpConnections: Gauge<"listener">;
  /** Final replies to SMTP transactions and logins: class "2xx"/"4xx"/"5xx" and a short reason. */
  readonly smtpResults: Counter<"listener" | "class" | "reason">;
  readonly imapSessions: Counter<"listener">;
  readonly imapConnections: Gauge<"listener">;
  readonly imapIdleSessions: Gauge;
  /**
   * Mail connections ended, by listener and why: "quit", "gone" (the client went away without
   * QUIT/LOGOUT: a normal end for phones), "idle", "limit", "tls", "protocol", "shutdown", "error".
   */
  readonly connectionEnds: Counter<"listener" | "reason">;
  /**
   * Mail connections that used TLS, by listener and engine ("tern": tern's own TLS 1.3;
   * "node": node:tls, for every client on SMTP and the clients tern's engine hands on), counted
   * as they end.
   */
  readonly tlsConnections: Counter<"listener" | "engine">;
  /** Messages accepted for delivery, by how they arrived ("smtp", "submission", "mxdeliv"). */
  readonly messagesReceived: Counter<"via">;
  /** Per-recipient delivery attempts: target "local"/"remote", outcome as DeliveryOutcome. */
  readonly deliveries: Counter<"target" | "outcome">;
  readonly deliveryLatency: Histogram<"target">;
  readonly queueLength: Gauge;
  /** Per destination domain of the outbound queue (the busiest ones). */
  readonly federation: {
    readonly queued: Gauge<"destination">;
    readonly oldestSeconds: Gauge<"destination">;
    readonly concurrency: Gauge<"destination">;
    readonly active: Gauge<"destination">;
    readonly backoff: Gauge<"destination">;
  };
  readonly pushSent: Counter;
  readonly pushFailed: Counter;
  /** Iroh relay clients connected now, by upgrade form ("relay", "websocket"). */
  readonly irohClients: Gauge<"protocol">;
  /** Iroh relay connections ended, by outcome (client left, timeouts, refused handshakes…). */
  readonly irohSessions: Counter<"outcome">;
  /** Packets the iroh relay wrote to their receivers, and their bytes. */
  readonly irohRelayedPackets: Counter;
  readonly irohRelayedBytes: Counter;
  /** Packet bytes clients handed to the iroh relay. */
  readonly irohReceivedBytes: Counter;
  /** Frames the iroh relay dropped: no such peer, a receiver's queue full. */
  readonly irohDropped: Counter<"reason">;
  /** Frames after which a client had to wait for its rate limit. */
  readonly irohRateLimited: Counter;
  /** Messages received and delivered in the last 60 s. */
  ratesLastMinute(): { received: number; delivered: number };
  /** Per-minute received/delivered counts, oldest first. */
  rateHistory(minutes?: number): { minute: number; received: number; delivered: number }[];
  /** Prometheus text of the whole registry. */
  render(): string;
}

export function smtpReplyClass(code: number): ReplyClass {
  return code >= 500 ? "5xx" : code >= 400 ? "4xx" : "2xx";
}

export function createRelayMetrics(
  options: { version?: string; now?: () => number } = {},
): RelayMetrics {
  const registry = new MetricsRegistry();
  const received = new MinuteSeries({ now: options.now });
  const delivered = new MinuteSeries({ now: options.now });
  if (options.version) {
    registry.gauge("tern_build_info", "Version of the running relay", ["version"]).set(1, {
      version: options.version,
    });
  }
  const residentBytes = registry.gauge(
    "process_resident_memory_bytes",
    "Resident memory size of the relay process",
  );
  const heapUsedBytes = registry.gauge(
    "tern_js_heap_used_bytes",
    "JavaScript heap in use on the main thread (garbage included until the next collection)",
  );
  const externalBytes = registry.gauge(
    "tern_js_external_bytes",
    "Memory held outside the JavaScript heap by JavaScript objects (buffers)",
  );
  const metrics: RelayMetrics = {
    registry,
    smtpSessions: registry.counter("tern_smtp_sessions_total", "SMTP sessions opened", [
      "listener",
    ]),
    smtpConnections: registry.gauge("tern_smtp_connections", "SMTP connections open now", [
      "listener",
    ]),
    smtpResults: registry.counter(
      "tern_smtp_results_total",
      "Final SMTP replies to transactions and logins by reply class and reason",
      ["listener", "class", "reason"],
    ),
    imapSessions: registry.counter("tern_imap_sessions_total", "IMAP sessions opened", [
      "listener",
    ]),
    imapConnections: registry.gauge("tern_imap_connections", "IMAP connections open now", [
      "listener",
    ]),
    imapIdleSessions: registry.gauge("tern_imap_idle_sessions", "IMAP sessions in IDLE now"),
    connectionEnds: registry.counter(
      "tern_connection_ends_total",
      "Mail connections ended, by listener and reason",
      ["listener", "reason"],
    ),
    tlsConnections: registry.counter(
      "tern_tls_connections_total",
      "Mail connections that used TLS, by listener and TLS engine (tern, node), counted at their end",
      ["listener", "engine"],
    ),
    messagesReceived: registry.counter(
      "tern_messages_received_total",
      "Messages accepted for delivery by arrival path",
      ["via"],
      (n) => received.add(n),
    ),
    deliveries: registry.counter(
      "tern_deliveries_total",
      "Per-recipient delivery attempts by target and outcome",
      ["target", "outcome"],
      (n, labels) => {
        if (labels?.outcome === "delivered") delivered.add(n);
      },
    ),
    deliveryLatency: registry.histogram(
      "tern_delivery_latency_seconds",
      "Time from acceptance to successful delivery",
      DELIVERY_LATENCY_BUCKETS,
      ["target"],
    ),
    queueLength: registry.gauge("tern_queue_length", "Outbound recipients waiting in the queue"),
    federation: {
      queued: registry.gauge(
        "tern_federation_queued",
        "Outbound recipients waiting per destination domain",
        ["destination"],
      ),
      oldestSeconds: registry.gauge(
        "tern_federation_oldest_seconds",
        "Age of the oldest message waiting per destination domain",
        ["destination"],
      ),
      concurrency: registry.gauge(
        "tern_federation_concurrency",
        "Deliveries allowed at once per destination domain (slow-start window)",
        ["destination"],
      ),
      active: registry.gauge(
        "tern_federation_active",
        "Deliveries running per destination domain",
        ["destination"],
      ),
      backoff: registry.gauge(
        "tern_federation_backoff",
        "1 while a destination domain does not answer and is retried later",
        ["destination"],
      ),
    },
    pushSent: registry.counter(
      "tern_push_sent_total",
      "Push notifications accepted by the notification service",
    ),
    pushFailed: registry.counter("tern_push_failed_total", "Push notifications that failed"),
    irohClients: registry.gauge("tern_iroh_clients", "Iroh relay clients connected now", [
      "protocol",
    ]),
    irohSessions: registry.counter(
      "tern_iroh_sessions_total",
      "Iroh relay connections ended, by outcome",
      ["outcome"],
    ),
    irohRelayedPackets: registry.counter(
      "tern_iroh_relayed_packets_total",
      "Packets the iroh relay delivered to their receivers",
    ),
    irohRelayedBytes: registry.counter(
      "tern_iroh_relayed_bytes_total",
      "Packet bytes the iroh relay delivered to their receivers",
    ),
    irohReceivedBytes: registry.counter(
      "tern_iroh_received_bytes_total",
      "Packet bytes clients sent to the iroh relay",
    ),
    irohDropped: registry.counter(
      "tern_iroh_dropped_total",
      "Frames the iroh relay dropped, by reason",
      ["reason"],
    ),
    irohRateLimited: registry.counter(
      "tern_iroh_rate_limited_total",
      "Frames after which an iroh relay client waited for its rate limit",
    ),
    ratesLastMinute: () => ({ received: received.lastMinute(), delivered: delivered.lastMinute() }),
    rateHistory(minutes = 30) {
      const r: MinutePoint[] = received.history(minutes);
      const d: MinutePoint[] = delivered.history(minutes);
      return r.map((p, i) => ({ minute: p.minute, received: p.count, delivered: d[i].count }));
    },
    render: () => {
      // Memory is read at each scrape: resident set (what the kernel counts), the JavaScript
      // heap in use (garbage included until the next collection) and memory held outside the
      // heap by JavaScript objects (buffers).
      const m = Deno.memoryUsage();
      residentBytes.set(m.rss);
      heapUsedBytes.set(m.heapUsed);
      externalBytes.set(m.external);
      return registry.render();
    },
  };
  return metrics;
}
