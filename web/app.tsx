// The admin shell: token login (kept in sessionStorage), navigation by URL hash, and the pages.

import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, apiRequest } from "./api.ts";
import type { RequestOptions } from "./api.ts";
import { SessionContext } from "./hooks.ts";
import type { Session } from "./hooks.ts";
import { Dashboard } from "./pages/dashboard.tsx";
import { Accounts } from "./pages/accounts.tsx";
import { RegistrationPage } from "./pages/registration.tsx";
import { QueuePage } from "./pages/queue.tsx";
import { FederationPage } from "./pages/federation.tsx";
import { SettingsPage } from "./pages/settings.tsx";

const TOKEN_KEY = "tern-admin-token";

const ROUTES = [
  { path: "dashboard", label: "Dashboard", page: Dashboard },
  { path: "accounts", label: "Accounts", page: Accounts },
  { path: "registration", label: "Registration", page: RegistrationPage },
  { path: "queue", label: "Queue", page: QueuePage },
  { path: "federation", label: "Federation", page: FederationPage },
  { path: "settings", label: "Settings", page: SettingsPage },
] as const;

function currentRoute(): string {
  const r = location.hash.replace(/^#\/?/, "");
  return ROUTES.some((x) => x.path === r) ? r : "dashboard";
}

function Login({ notice, onLogin }: { notice: string | null; onLogin: (token: string) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await apiRequest(token.trim(), "/status");
      onLogin(token.trim());
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 0;
      setError(status === 401 ? "That admin token is not valid." : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form class="card login-card" onSubmit={submit}>
        <h1>tern admin</h1>
        <p class="muted">
          Sign in with the admin token. Print it on the server with <code>tern admin-token</code>.
        </p>
        {notice && <div class="notice">{notice}</div>}
        <label>
          Admin token
          <input
            name="token"
            type="password"
            autocomplete="current-password"
            required
            autofocus
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        {error && <div class="state error" role="alert">{error}</div>}
        <button type="submit" disabled={busy || !token.trim()}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

export function App() {
  const [token, setToken] = useState<string | null>(() => sessionStorage.getItem(TOKEN_KEY));
  const [notice, setNotice] = useState<string | null>(null);
  const [route, setRoute] = useState(currentRoute);
  const [menuOpen, setMenuOpen] = useState(false);

  useEffect(() => {
    const onHash = () => (setRoute(currentRoute()), setMenuOpen(false));
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  const session = useMemo<Session | null>(() => {
    if (!token) return null;
    const logout = (message?: string) => {
      sessionStorage.removeItem(TOKEN_KEY);
      setNotice(message ?? null);
      setToken(null);
    };
    return {
      logout,
      async call<T>(path: string, options?: RequestOptions): Promise<T> {
        try {
          return await apiRequest<T>(token, path, options);
        } catch (err) {
          if (err instanceof ApiError && err.status === 401) {
            logout("Your session ended: the admin token is no longer valid.");
          }
          throw err;
        }
      },
    };
  }, [token]);

  if (!session) {
    return (
      <Login
        notice={notice}
        onLogin={(t) => (sessionStorage.setItem(TOKEN_KEY, t), setNotice(null), setToken(t))}
      />
    );
  }
  const active = ROUTES.find((r) => r.path === route) ?? ROUTES[0];
  const Page = active.page;
  return (
    <SessionContext.Provider value={session}>
      <header class="topbar">
        <a class="brand" href="#/dashboard">
          tern <span>admin</span>
        </a>
        <button
          type="button"
          class="menu-toggle secondary"
          aria-expanded={menuOpen}
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <nav class={menuOpen ? "open" : ""} aria-label="Sections">
          {ROUTES.map((r) => (
            <a
              key={r.path}
              href={`#/${r.path}`}
              class={r.path === active.path ? "active" : ""}
              aria-current={r.path === active.path ? "page" : undefined}
            >
              {r.label}
            </a>
          ))}
          <button type="button" class="secondary logout" onClick={() => session.logout()}>
            Sign out
          </button>
        </nav>
      </header>
      <main class="content">
        <h1 class="page-title">{active.label}</h1>
        <Page />
      </main>
    </SessionContext.Provider>
  );
}
