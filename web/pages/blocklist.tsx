// Blocklist: addresses and domains that may not register or send to this relay.

import { useState } from "preact/hooks";
import { Card, ConfirmButton, Empty, ErrorBox, formatTime, Loading } from "../components.tsx";
import { useAction, useApi, useSession } from "../hooks.ts";

interface Blocked {
  entry: string;
  reason: string;
  created_at: number;
}

export function Blocklist() {
  const { call } = useSession();
  const list = useApi<{ items: Blocked[] }>("/blocklist");
  const action = useAction();
  const [entry, setEntry] = useState("");
  const [reason, setReason] = useState("");
  const add = async (e: Event) => {
    e.preventDefault();
    const ok = await action.run(() =>
      call("/blocklist", { method: "POST", body: { entry, reason: reason || undefined } })
    );
    if (ok) {
      setEntry("");
      setReason("");
      list.reload();
    }
  };
  const remove = (x: string) =>
    action.run(() => call(`/blocklist/${encodeURIComponent(x)}`, { method: "DELETE" })).then(
      list.reload,
    );
  return (
    <Card title="Blocklist">
      <form class="inline-form" onSubmit={add}>
        <label>
          Address or domain<input
            required
            value={entry}
            placeholder="user@example.org or @example.org"
            onInput={(e) => setEntry(e.currentTarget.value)}
          />
        </label>
        <label>
          Reason<input value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={action.busy}>Block</button>
      </form>
      {action.error && <ErrorBox message={action.error} />}
      {list.loading
        ? <Loading />
        : !list.data
        ? <ErrorBox message={list.error ?? "No data"} onRetry={list.reload} />
        : list.data.items.length === 0
        ? <Empty>Nothing is blocked.</Empty>
        : (
          <table class="table responsive">
            <thead>
              <tr>
                <th>Entry</th>
                <th>Reason</th>
                <th>Since</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((b) => (
                <tr key={b.entry}>
                  <td data-label="Entry" class="mono">{b.entry}</td>
                  <td data-label="Reason">{b.reason}</td>
                  <td data-label="Since">{formatTime(b.created_at)}</td>
                  <td class="row-actions">
                    <ConfirmButton
                      label="Remove"
                      confirm="Remove now"
                      onConfirm={() => remove(b.entry)}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
    </Card>
  );
}
