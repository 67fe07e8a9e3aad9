// Outbound queue: per destination (what waits, since when, why, how many deliveries at once),
// then messages waiting for remote delivery with per-recipient status; retry now or drop one.

import { useState } from "preact/hooks";
import type { Page, QueueDestination, QueueEntry } from "../api.ts";
import {
  Badge,
  Card,
  ConfirmButton,
  Empty,
  ErrorBox,
  formatBytes,
  formatDuration,
  formatTime,
  Loading,
} from "../components.tsx";
import { useAction, useApi, useSession } from "../hooks.ts";

const TONE: Record<string, "ok" | "warn" | "bad" | "muted"> = {
  queued: "muted",
  deferred: "warn",
  delivered: "ok",
  failed: "bad",
};

function Entry({ e, onChanged }: { e: QueueEntry; onChanged: () => void }) {
  const { call } = useSession();
  const action = useAction();
  const [open, setOpen] = useState(false);
  const counts = e.recipients.reduce<Record<string, number>>(
    (a, r) => ({ ...a, [r.status]: (a[r.status] ?? 0) + 1 }),
    {},
  );
  return (
    <>
      <tr>
        <td data-label="ID">#{e.id}</td>
        <td data-label="Sender" class="mono">{e.sender || "<>"}</td>
        <td data-label="Recipients">
          {Object.entries(counts).map(([s, n]) => (
            <Badge key={s} tone={TONE[s] ?? "muted"}>{n} {s}</Badge>
          ))}
        </td>
        <td data-label="Size">{formatBytes(e.size)}</td>
        <td data-label="Queued">{formatTime(e.created_at)}</td>
        <td class="row-actions">
          <button
            type="button"
            class="secondary"
            onClick={() => setOpen(!open)}
            aria-expanded={open}
          >
            {open ? "Hide" : "Details"}
          </button>
          <button
            type="button"
            class="secondary"
            disabled={action.busy}
            onClick={() =>
              action.run(() => call(`/queue/${e.id}/retry`, { method: "POST" })).then(onChanged)}
          >
            Retry now
          </button>
          <ConfirmButton
            label="Drop"
            confirm="Drop now"
            onConfirm={() =>
              action.run(() => call(`/queue/${e.id}`, { method: "DELETE" })).then(onChanged)}
          />
          {action.error && <div class="error small">{action.error}</div>}
        </td>
      </tr>
      {open && (
        <tr class="details">
          <td colSpan={6}>
            <table class="table">
              <thead>
                <tr>
                  <th>Recipient</th>
                  <th>Status</th>
                  <th>Attempts</th>
                  <th>Next attempt</th>
                  <th>Last error</th>
                </tr>
              </thead>
              <tbody>
                {e.recipients.map((r) => (
                  <tr key={r.recipient}>
                    <td class="mono">{r.recipient}</td>
                    <td>
                      <Badge tone={TONE[r.status] ?? "muted"}>{r.status}</Badge>
                    </td>
                    <td>{r.attempts}</td>
                    <td>
                      {r.status === "queued" || r.status === "deferred"
                        ? formatTime(r.next_attempt_at)
                        : "–"}
                    </td>
                    <td class="small">{r.last_error ?? "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </td>
        </tr>
      )}
    </>
  );
}

function Destinations() {
  const list = useApi<{ destinations: QueueDestination[] }>("/queue/destinations", 10_000);
  return (
    <Card title="Destinations">
      {list.loading
        ? <Loading />
        : !list.data
        ? <ErrorBox message={list.error ?? "No data"} onRetry={list.reload} />
        : list.data.destinations.length === 0
        ? <Empty>No mail is waiting for another relay.</Empty>
        : (
          <table class="table responsive" id="destinations-table">
            <thead>
              <tr>
                <th>Destination</th>
                <th>Queued</th>
                <th>Oldest</th>
                <th>Delivering</th>
                <th>State</th>
                <th>Last error</th>
              </tr>
            </thead>
            <tbody>
              {list.data.destinations.map((d) => (
                <tr key={d.domain} data-domain={d.domain}>
                  <td data-label="Destination" class="mono">{d.domain}</td>
                  <td data-label="Queued">
                    {d.pending}
                    {d.deferred > 0 && (
                      <span class="muted small">{` (${d.deferred} deferred)`}</span>
                    )}
                  </td>
                  <td data-label="Oldest">
                    {d.oldest_at
                      ? formatDuration(Math.max(0, Math.round((Date.now() - d.oldest_at) / 1000)))
                      : "–"}
                  </td>
                  <td data-label="Delivering">{d.active} of {d.concurrency} at once</td>
                  <td data-label="State">
                    {d.state === "backoff"
                      ? <Badge tone="bad">not answering, retry {formatTime(d.retry_at)}</Badge>
                      : <Badge tone="ok">answering</Badge>}
                  </td>
                  <td data-label="Last error" class="small">{d.last_error ?? "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
    </Card>
  );
}

export function QueuePage() {
  const [status, setStatus] = useState("");
  const list = useApi<Page<QueueEntry>>(
    `/queue?limit=100${status ? `&status=${status}` : ""}`,
    10_000,
  );
  return (
    <div class="page" data-page="queue">
      <Destinations />
      <Card
        title="Outbound queue"
        actions={
          <select
            aria-label="Filter by status"
            value={status}
            onChange={(e) => setStatus(e.currentTarget.value)}
          >
            <option value="">All</option>
            <option value="queued">Queued</option>
            <option value="deferred">Deferred</option>
            <option value="failed">Failed</option>
          </select>
        }
      >
        {list.loading
          ? <Loading />
          : !list.data
          ? <ErrorBox message={list.error ?? "No data"} onRetry={list.reload} />
          : list.data.items.length === 0
          ? <Empty>The queue is empty: every message has been delivered.</Empty>
          : (
            <>
              <table class="table responsive">
                <thead>
                  <tr>
                    <th>ID</th>
                    <th>Sender</th>
                    <th>Recipients</th>
                    <th>Size</th>
                    <th>Queued</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {list.data.items.map((e) => <Entry key={e.id} e={e} onChanged={list.reload} />)}
                </tbody>
              </table>
              <p class="muted small">{list.data.total} entr{list.data.total === 1 ? "y" : "ies"}</p>
            </>
          )}
      </Card>
    </div>
  );
}
