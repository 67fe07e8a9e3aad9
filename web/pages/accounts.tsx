// Accounts: search, page through, create (generated or given credentials), block, unblock and
// delete; plus the blocklist of addresses and domains.

import { useEffect, useState } from "preact/hooks";
import type { Account, Page } from "../api.ts";
import {
  Badge,
  Card,
  ConfirmButton,
  Empty,
  ErrorBox,
  formatBytes,
  formatTime,
  Loading,
} from "../components.tsx";
import { useAction, useApi, useSession } from "../hooks.ts";
import { Blocklist } from "./blocklist.tsx";

const PAGE_SIZE = 25;

function CreateAccount({ onCreated }: { onCreated: () => void }) {
  const { call } = useSession();
  const action = useAction();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [created, setCreated] = useState<Account | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const a = await action.run(() =>
      call<Account>("/accounts", {
        method: "POST",
        body: { email: email || undefined, password: password || undefined },
      })
    );
    if (a) {
      setCreated(a);
      setEmail("");
      setPassword("");
      onCreated();
    }
  };
  return (
    <Card title="Create account">
      <form class="inline-form" onSubmit={submit}>
        <label>
          <span>
            Address <span class="muted">(empty: random)</span>
          </span>
          <input
            name="email"
            value={email}
            placeholder="name or name@domain"
            autocomplete="off"
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label>
          <span>
            Password <span class="muted">(empty: generated)</span>
          </span>
          <input
            name="password"
            type="text"
            value={password}
            autocomplete="off"
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={action.busy}>{action.busy ? "Creating…" : "Create"}</button>
      </form>
      {action.error && <ErrorBox message={action.error} />}
      {created && (
        <div class="notice" role="status">
          Created <strong>{created.email}</strong>
          {created.password && (
            <>
              with password <code>{created.password}</code> (shown once)
            </>
          )}
        </div>
      )}
    </Card>
  );
}

function AccountRow({ a, onChanged }: { a: Account; onChanged: () => void }) {
  const { call } = useSession();
  const action = useAction();
  const path = `/accounts/${encodeURIComponent(a.email)}`;
  const act = (fn: () => Promise<unknown>) => action.run(fn).then(onChanged);
  const quota = a.quota_bytes ? Math.min(100, Math.round((a.used_bytes / a.quota_bytes) * 100)) : 0;
  return (
    <tr data-email={a.email}>
      <td data-label="Address" class="mono">{a.email}</td>
      <td data-label="Status">
        {a.blocked ? <Badge tone="bad">blocked</Badge> : <Badge tone="ok">active</Badge>}
      </td>
      <td data-label="Storage">
        <div class="meter" title={`${quota}% of ${formatBytes(a.quota_bytes)}`}>
          <span style={{ width: `${quota}%` }} />
        </div>
        <span class="small">{formatBytes(a.used_bytes)} of {formatBytes(a.quota_bytes)}</span>
      </td>
      <td data-label="Last login">{formatTime(a.last_login_at)}</td>
      <td data-label="Created">{formatTime(a.created_at)}</td>
      <td class="row-actions">
        {a.blocked
          ? (
            <button
              type="button"
              class="secondary"
              disabled={action.busy}
              onClick={() => act(() => call(`${path}/unblock`, { method: "POST" }))}
            >
              Unblock
            </button>
          )
          : (
            <button
              type="button"
              class="secondary"
              disabled={action.busy}
              onClick={() => act(() => call(`${path}/block`, { method: "POST" }))}
            >
              Block
            </button>
          )}
        <ConfirmButton
          label="Delete"
          confirm="Delete now"
          disabled={action.busy}
          onConfirm={() => act(() => call(path, { method: "DELETE" }))}
        />
        {action.error && <div class="error small">{action.error}</div>}
      </td>
    </tr>
  );
}

export function Accounts() {
  const [input, setInput] = useState("");
  const [search, setSearch] = useState("");
  const [offset, setOffset] = useState(0);
  useEffect(() => {
    const id = setTimeout(() => (setSearch(input.trim()), setOffset(0)), 250);
    return () => clearTimeout(id);
  }, [input]);
  const q = new URLSearchParams({ search, offset: String(offset), limit: String(PAGE_SIZE) });
  const list = useApi<Page<Account>>(`/accounts?${q}`);
  const page = list.data;
  return (
    <div class="page" data-page="accounts">
      <CreateAccount onCreated={list.reload} />
      <Card
        title="Accounts"
        actions={
          <input
            type="search"
            class="search"
            placeholder="Search addresses"
            aria-label="Search addresses"
            value={input}
            onInput={(e) => setInput(e.currentTarget.value)}
          />
        }
      >
        {list.loading
          ? <Loading />
          : !page
          ? <ErrorBox message={list.error ?? "No data"} onRetry={list.reload} />
          : (
            <>
              {list.error && <ErrorBox message={list.error} onRetry={list.reload} />}
              {page.items.length === 0
                ? (
                  <Empty>
                    {search
                      ? `No account matches “${search}”.`
                      : "No accounts yet. They appear on first login, or create one above."}
                  </Empty>
                )
                : (
                  <table class="table responsive" id="accounts-table">
                    <thead>
                      <tr>
                        <th>Address</th>
                        <th>Status</th>
                        <th>Storage</th>
                        <th>Last login</th>
                        <th>Created</th>
                        <th />
                      </tr>
                    </thead>
                    <tbody>
                      {page.items.map((a) => (
                        <AccountRow key={a.email} a={a} onChanged={list.reload} />
                      ))}
                    </tbody>
                  </table>
                )}
              <div class="pager">
                <span class="muted">
                  {page.total === 0
                    ? "0 accounts"
                    : `${page.offset + 1}–${page.offset + page.items.length} of ${page.total}`}
                </span>
                <button
                  type="button"
                  class="secondary"
                  disabled={offset === 0}
                  onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}
                >
                  Previous
                </button>
                <button
                  type="button"
                  class="secondary"
                  disabled={offset + PAGE_SIZE >= page.total}
                  onClick={() => setOffset(offset + PAGE_SIZE)}
                >
                  Next
                </button>
              </div>
            </>
          )}
      </Card>
      <Blocklist />
    </div>
  );
}
