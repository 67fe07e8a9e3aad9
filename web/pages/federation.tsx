// Federation: exchange mail with every domain (blocklist mode) or only listed ones (allowlist),
// and traffic per remote domain.

import { useEffect, useState } from "preact/hooks";
import { Card, Empty, ErrorBox, formatTime, Loading } from "../components.tsx";
import { useAction, useApi, useSession } from "../hooks.ts";

interface Federation {
  mode: "blocklist" | "allowlist";
  allowlist: string[];
  domains: {
    domain: string;
    sent: number;
    received: number;
    failures: number;
    last_error: string | null;
    last_at: number;
  }[];
}

export function FederationPage() {
  const { call } = useSession();
  const fed = useApi<Federation>("/federation");
  const action = useAction();
  const [mode, setMode] = useState<Federation["mode"]>("blocklist");
  const [allow, setAllow] = useState("");
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (fed.data) {
      setMode(fed.data.mode);
      setAllow(fed.data.allowlist.join("\n"));
    }
  }, [fed.data]);
  if (fed.loading) return <Loading />;
  if (!fed.data) return <ErrorBox message={fed.error ?? "No data"} onRetry={fed.reload} />;
  const save = async (e: Event) => {
    e.preventDefault();
    setSaved(false);
    const ok = await action.run(() =>
      call("/federation", {
        method: "PUT",
        body: { mode, allowlist: allow.split(/[\s,]+/).filter(Boolean) },
      })
    );
    if (ok) {
      setSaved(true);
      fed.reload();
    }
  };
  return (
    <div class="page" data-page="federation">
      <Card title="Policy">
        <form class="stack" onSubmit={save}>
          <label class="radio">
            <input
              type="radio"
              name="mode"
              checked={mode === "blocklist"}
              onChange={() => setMode("blocklist")}
            />
            Exchange mail with every relay except blocked domains
          </label>
          <label class="radio">
            <input
              type="radio"
              name="mode"
              checked={mode === "allowlist"}
              onChange={() => setMode("allowlist")}
            />
            Exchange mail only with the domains below
          </label>
          <label>
            <span>
              Allowed domains{" "}
              <span class="muted">
                (one per line, or separated by commas or spaces; used in allowlist mode)
              </span>
            </span>
            <textarea rows={4} value={allow} onInput={(e) => setAllow(e.currentTarget.value)} />
          </label>
          <div class="row">
            <button type="submit" disabled={action.busy}>Save</button>
            {saved && <span class="ok">Saved</span>}
          </div>
          {action.error && <ErrorBox message={action.error} />}
        </form>
      </Card>
      <Card title="Traffic by domain">
        {fed.data.domains.length === 0
          ? <Empty>No mail exchanged with other relays yet.</Empty>
          : (
            <table class="table responsive">
              <thead>
                <tr>
                  <th>Domain</th>
                  <th>Sent</th>
                  <th>Received</th>
                  <th>Failures</th>
                  <th>Last activity</th>
                  <th>Last error</th>
                </tr>
              </thead>
              <tbody>
                {fed.data.domains.map((d) => (
                  <tr key={d.domain}>
                    <td data-label="Domain" class="mono">{d.domain}</td>
                    <td data-label="Sent">{d.sent}</td>
                    <td data-label="Received">{d.received}</td>
                    <td data-label="Failures">{d.failures}</td>
                    <td data-label="Last activity">{formatTime(d.last_at)}</td>
                    <td data-label="Last error" class="small">{d.last_error ?? "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
      </Card>
    </div>
  );
}
