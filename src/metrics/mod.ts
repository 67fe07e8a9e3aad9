// Public surface of the metrics registry and the relay's predefined metrics.

export {
  Counter,
  escapeLabelValue,
  formatValue,
  Gauge,
  Histogram,
  MetricsRegistry,
  PROMETHEUS_CONTENT_TYPE,
} from "./registry.ts";
export type { LabelValues } from "./registry.ts";
export { MinuteSeries } from "./minute_series.ts";
export type { MinutePoint } from "./minute_series.ts";
export { createRelayMetrics, DELIVERY_LATENCY_BUCKETS, smtpReplyClass } from "./relay_metrics.ts";
export type {
  DeliveryOutcome,
  DeliveryTarget,
  ImapListener,
  RelayMetrics,
  ReplyClass,
  SmtpListener,
} from "./relay_metrics.ts";
