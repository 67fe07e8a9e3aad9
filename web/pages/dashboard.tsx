// Dashboard: live figures polled from /status every few seconds, a chart of messages per minute,
// open connections, push counters and the iroh relay.

import type { Status } from "../api.ts";
import {
  Badge,
  Card,
  Empty,
  ErrorBox,
  formatBytes,
  formatDuration,
  Loading,
} from "../components.tsx";
import { MessagesChart } from "../chart.tsx";
import { useApi } from "../hooks.ts";

interface PushStats {
  enabled: boolean;
  pending_jobs: number;
  sent: number | null;
  failed: number | null;
}

export const STATUS_POLL_MS = 5000;

function Stat({ label, value, hint }: { label: string; value: string | number; hint?: string }) {
  return (
    <div class="stat">
      <div class="stat-value">{value}</div>
      <div class="stat-label">{label}</div>
      {hint && <div class="stat-hint">{hint}</div>}
    </div>
  );
}

/** The relay Delta Chat uses for webxdc realtime apps: what is offered and what it carried. */
function IrohCard({ iroh }: { iroh: Status["iroh"] }) {
  const rows: [string, string | number][] = [
    ["Clients connected", iroh.clients],
    ["Packets relayed", iroh.relayed_packets],
    ["Data relayed", formatBytes(iroh.relayed_bytes)],
    ["Dropped", iroh.dropped],
  ];
  return (
    <Card title="Iroh relay" actions={<span class="muted">webxdc realtime</span>}>
      <table class="kv" data-card="iroh">
        <tbody>
          <tr>
            <th>Offered</th>
            <td>
              {iroh.url ? <code>{iroh.url}</code> : <Badge tone="muted">none</Badge>}
            </td>
          </tr>
          {rows.map(([label, value]) => (
            <tr key={label}>
              <th>{label}</th>
              <td>{value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Card>
  );
}

export function Dashboard() {
  const status = useApi<Status>("/status", STATUS_POLL_MS);
  const push = useApi<PushStats>("/push", 3 * STATUS_POLL_MS);
  if (status.loading) return <Loading label="Loading status…" />;
  if (!status.data) return <ErrorBox message={status.error ?? "No data"} onRetry={status.reload} />;
  const s = status.data;
  const connections = Object.entries(s.connections).sort(([a], [b]) => a.localeCompare(b));
  const openTotal = connections.reduce((a, [, n]) => a + n, 0);
  return (
    <div class="page" data-page="dashboard">
      {status.error && <ErrorBox message={`Refresh failed: ${status.error}`} />}
      <div class="stats">
        <Stat label="Accounts" value={s.accounts} />
        <Stat label="Received / min" value={s.messages_per_minute.in} />
        <Stat label="Delivered / min" value={s.messages_per_minute.out} />
        <Stat
          label="Queued"
          value={s.queue_length}
          hint={s.queue_length ? "waiting for delivery" : undefined}
        />
        <Stat label="IDLE sessions" value={s.idle_sessions} />
        <Stat label="Uptime" value={formatDuration(s.uptime_seconds)} />
      </div>
      <Card title="Messages per minute">
        <MessagesChart points={s.history} />
      </Card>
      <div class="columns">
        <Card title="Open connections" actions={<span class="muted">{openTotal} total</span>}>
          {connections.length === 0 || openTotal === 0
            ? <Empty>No open connections.</Empty>
            : (
              <table class="kv">
                <tbody>
                  {connections.map(([name, n]) => (
                    <tr key={name}>
                      <th>{name}</th>
                      <td>{n}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
        </Card>
        <Card title="Push notifications">
          {push.loading
            ? <Loading />
            : !push.data
            ? <ErrorBox message={push.error ?? "No data"} onRetry={push.reload} />
            : (
              <table class="kv">
                <tbody>
                  <tr>
                    <th>Status</th>
                    <td>
                      {push.data.enabled
                        ? <Badge tone="ok">enabled</Badge>
                        : <Badge tone="muted">disabled</Badge>}
                    </td>
                  </tr>
                  <tr>
                    <th>Pending</th>
                    <td>{push.data.pending_jobs}</td>
                  </tr>
                  <tr>
                    <th>Sent</th>
                    <td>{push.data.sent ?? "–"}</td>
                  </tr>
                  <tr>
                    <th>Failed</th>
                    <td>{push.data.failed ?? "–"}</td>
                  </tr>
                </tbody>
              </table>
            )}
        </Card>
        <IrohCard iroh={s.iroh} />
      </div>
      <p class="muted small">tern {s.version} · refreshed every {STATUS_POLL_MS / 1000} s</p>
    </div>
  );
}
