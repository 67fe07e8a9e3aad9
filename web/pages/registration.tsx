// Registration: who may create accounts (open, token, closed; JIT on first login) and the
// registration tokens with their invite links.

import { useEffect, useState } from "preact/hooks";
import type { Token } from "../api.ts";
import {
  Badge,
  Card,
  ConfirmButton,
  Empty,
  ErrorBox,
  formatTime,
  Loading,
} from "../components.tsx";
import { useAction, useApi, useSession } from "../hooks.ts";

interface Registration {
  registration: "open" | "closed" | "token";
  jit_enabled: boolean;
}

const MODES: Record<Registration["registration"], string> = {
  open: "Open: anyone may create an account",
  token: "Token: only with a registration token",
  closed: "Closed: no new accounts",
};

function Policy() {
  const { call } = useSession();
  const current = useApi<Registration>("/registration");
  const action = useAction();
  // The admin's unsaved edits; until there are any (and after each reload) the form shows the
  // loaded values, so the render that ends loading already has them.
  const [edited, setDraft] = useState<Registration | null>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => setDraft(null), [current.data]);
  const draft = edited ?? current.data;
  if (current.loading) {
    return (
      <Card title="Registration">
        <Loading />
      </Card>
    );
  }
  if (!draft) {
    return (
      <Card title="Registration">
        <ErrorBox message={current.error ?? "No data"} onRetry={current.reload} />
      </Card>
    );
  }
  const save = async (e: Event) => {
    e.preventDefault();
    setSaved(false);
    const r = await action.run(() =>
      call<Registration>("/registration", { method: "PUT", body: draft })
    );
    if (r) {
      setSaved(true);
      current.reload();
    }
  };
  return (
    <Card title="Registration">
      <form class="stack" onSubmit={save}>
        <fieldset>
          <legend>New accounts</legend>
          {(Object.keys(MODES) as Registration["registration"][]).map((m) => (
            <label class="radio" key={m}>
              <input
                type="radio"
                name="registration"
                value={m}
                checked={draft.registration === m}
                onChange={() =>
                  setDraft({ ...draft, registration: m })}
              />
              {MODES[m]}
            </label>
          ))}
        </fieldset>
        <label class="check">
          <input
            type="checkbox"
            name="jit_enabled"
            checked={draft.jit_enabled}
            onChange={(e) => setDraft({ ...draft, jit_enabled: e.currentTarget.checked })}
          />
          Create accounts on first login (JIT, as Delta Chat expects)
        </label>
        <div class="row">
          <button type="submit" disabled={action.busy}>{action.busy ? "Saving…" : "Save"}</button>
          {saved && <span class="ok">Saved</span>}
        </div>
        {action.error && <ErrorBox message={action.error} />}
      </form>
    </Card>
  );
}

function inviteLink(token: string): string {
  return `DCACCOUNT:https://${location.host}/new?token=${encodeURIComponent(token)}`;
}

function Tokens() {
  const { call } = useSession();
  const list = useApi<{ items: Token[] }>("/tokens");
  const action = useAction();
  const [maxUses, setMaxUses] = useState("1");
  const [hours, setHours] = useState("");
  const [comment, setComment] = useState("");
  const [created, setCreated] = useState<Token | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    const t = await action.run(() =>
      call<Token>("/tokens", {
        method: "POST",
        body: {
          max_uses: Number(maxUses),
          expires_in_hours: hours ? Number(hours) : undefined,
          comment,
        },
      })
    );
    if (t) {
      setCreated(t);
      setComment("");
      list.reload();
    }
  };
  const remove = (t: string) =>
    action.run(() => call(`/tokens/${encodeURIComponent(t)}`, { method: "DELETE" })).then(
      list.reload,
    );
  const tone = { active: "ok", exhausted: "muted", expired: "warn" } as const;
  return (
    <Card title="Registration tokens">
      <form class="inline-form" onSubmit={create}>
        <label>
          Uses<input
            type="number"
            min="1"
            required
            value={maxUses}
            onInput={(e) => setMaxUses(e.currentTarget.value)}
          />
        </label>
        <label>
          <span>
            Expires in hours <span class="muted">(empty: never)</span>
          </span>
          <input
            type="number"
            min="0.1"
            step="any"
            value={hours}
            onInput={(e) => setHours(e.currentTarget.value)}
          />
        </label>
        <label>
          Comment<input
            value={comment}
            maxLength={200}
            onInput={(e) => setComment(e.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={action.busy}>Create token</button>
      </form>
      {action.error && <ErrorBox message={action.error} />}
      {created && (
        <div class="notice" role="status">
          New token <code>{created.token}</code>. Invite link for Delta Chat:{" "}
          <code>{inviteLink(created.token)}</code>
        </div>
      )}
      {list.loading
        ? <Loading />
        : !list.data
        ? <ErrorBox message={list.error ?? "No data"} onRetry={list.reload} />
        : list.data.items.length === 0
        ? <Empty>No tokens. They are needed only when registration is set to “token”.</Empty>
        : (
          <table class="table responsive">
            <thead>
              <tr>
                <th>Token</th>
                <th>Status</th>
                <th>Uses</th>
                <th>Expires</th>
                <th>Comment</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((t) => (
                <tr key={t.token}>
                  <td data-label="Token" class="mono">{t.token}</td>
                  <td data-label="Status">
                    <Badge tone={tone[t.status]}>{t.status}</Badge>
                  </td>
                  <td data-label="Uses">{t.uses} / {t.max_uses}</td>
                  <td data-label="Expires">{t.expires_at ? formatTime(t.expires_at) : "never"}</td>
                  <td data-label="Comment">{t.comment || <span class="muted">–</span>}</td>
                  <td class="row-actions">
                    <ConfirmButton
                      label="Delete"
                      confirm="Delete now"
                      onConfirm={() => remove(t.token)}
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

export function RegistrationPage() {
  return (
    <div class="page" data-page="registration">
      <Policy />
      <Tokens />
    </div>
  );
}
