// Settings: every dynamic setting with an editor for its type, and the TLS certificates in use.

import { useState } from "preact/hooks";
import type { Certificate, Setting } from "../api.ts";
import { Badge, Card, Empty, ErrorBox, formatTime, Loading } from "../components.tsx";
import { useAction, useApi, useSession } from "../hooks.ts";

function SettingRow({ s, onSaved }: { s: Setting; onSaved: () => void }) {
  const { call } = useSession();
  const action = useAction();
  const [value, setValue] = useState(s.value ?? "");
  const dirty = value !== (s.value ?? "");
  const save = () =>
    action.run(() => call(`/settings/${s.key}`, { method: "PUT", body: { value } })).then(onSaved);
  const reset = () =>
    action.run(() => call(`/settings/${s.key}`, { method: "PUT", body: { value: null } })).then(
      (r) => {
        if (r) setValue(s.default ?? "");
        onSaved();
      },
    );
  const options = s.kind === "boolean" ? ["true", "false"] : s.values;
  return (
    <tr>
      <td data-label="Setting">
        <div class="mono">{s.key}</div>
        <div class="muted small">{s.doc}</div>
      </td>
      <td data-label="Value">
        {s.secret ? <span class="muted">secret (write only)</span> : options
          ? (
            <select
              aria-label={s.key}
              value={value}
              onChange={(e) => setValue(e.currentTarget.value)}
            >
              {options.map((o) => <option key={o} value={o}>{o}</option>)}
            </select>
          )
          : s.kind === "json"
          ? (
            <textarea
              aria-label={s.key}
              class="mono"
              rows={4}
              value={value}
              onInput={(e) => setValue(e.currentTarget.value)}
            />
          )
          : (
            <input
              aria-label={s.key}
              value={value}
              onInput={(e) => setValue(e.currentTarget.value)}
            />
          )}
        {action.error && <div class="error small">{action.error}</div>}
      </td>
      <td class="row-actions">
        <button type="button" disabled={!dirty || action.busy} onClick={save}>Save</button>
        <button
          type="button"
          class="secondary"
          disabled={action.busy || s.value === s.default}
          onClick={reset}
        >
          Default
        </button>
      </td>
    </tr>
  );
}

function Certificates() {
  const list = useApi<{ items: Certificate[] }>("/certificates");
  if (list.loading) return <Loading />;
  if (!list.data) return <ErrorBox message={list.error ?? "No data"} onRetry={list.reload} />;
  if (list.data.items.length === 0) return <Empty>No TLS certificate is configured.</Empty>;
  return (
    <table class="table responsive">
      <thead>
        <tr>
          <th>Use</th>
          <th>Names</th>
          <th>Valid until</th>
          <th>Issuer</th>
        </tr>
      </thead>
      <tbody>
        {list.data.items.map((c) => (
          <tr key={c.name}>
            <td data-label="Use">{c.name}</td>
            {c.error ? <td colSpan={3} class="error">{c.error}</td> : (
              <>
                <td data-label="Names" class="mono">{c.names?.join(", ")}</td>
                <td data-label="Valid until">
                  {formatTime(c.valid_to)}{" "}
                  <Badge
                    tone={(c.days_left ?? 0) < 14 ? "bad" : (c.days_left ?? 0) < 30 ? "warn" : "ok"}
                  >
                    {c.days_left} days
                  </Badge>
                </td>
                <td data-label="Issuer">
                  {c.self_signed ? <Badge tone="warn">self-signed</Badge> : c.issuer}
                </td>
              </>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function SettingsPage() {
  const list = useApi<{ items: Setting[] }>("/settings");
  return (
    <div class="page" data-page="settings">
      <Card title="Settings">
        <p class="muted small">Changes apply at once, without a restart.</p>
        {list.loading
          ? <Loading />
          : !list.data
          ? <ErrorBox message={list.error ?? "No data"} onRetry={list.reload} />
          : (
            <table class="table responsive settings">
              <thead>
                <tr>
                  <th>Setting</th>
                  <th>Value</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((s) => (
                  <SettingRow key={s.key + (s.value ?? "")} s={s} onSaved={list.reload} />
                ))}
              </tbody>
            </table>
          )}
      </Card>
      <Card title="TLS certificates">
        <Certificates />
      </Card>
    </div>
  );
}
