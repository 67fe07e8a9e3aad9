// Shared state for the pages: the signed-in API caller (context) and a loader hook with loading,
// error, reload and optional polling.

import { createContext } from "preact";
import { useCallback, useContext, useEffect, useState } from "preact/hooks";
import { ApiError } from "./api.ts";
import type { RequestOptions } from "./api.ts";

export interface Session {
  call<T>(path: string, options?: RequestOptions): Promise<T>;
  logout(message?: string): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession() used outside the signed-in app");
  return s;
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload(): void;
}

/** Loads `path` (again when it changes); with pollMs it refreshes in the background. */
export function useApi<T>(path: string, pollMs?: number): Loaded<T> {
  const session = useSession();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((n) => n + 1), []);

  // A new path shows the loading state; background refreshes keep the current data on screen.
  useEffect(() => setLoading(true), [path]);

  useEffect(() => {
    const ctl = new AbortController();
    session.call<T>(path, { signal: ctl.signal }).then(
      (d) => {
        setData(d);
        setError(null);
        setLoading(false);
      },
      (err: Error) => {
        if (err.name === "AbortError") return;
        setError(err instanceof ApiError ? err.message : String(err));
        setLoading(false);
      },
    );
    return () => ctl.abort();
  }, [path, tick]);

  useEffect(() => {
    if (!pollMs) return;
    const id = setInterval(reload, pollMs);
    return () => clearInterval(id);
  }, [pollMs, reload]);

  return { data, error, loading, reload };
}

/** Runs an action, tracking busy state and its error message. */
export function useAction(): {
  busy: boolean;
  error: string | null;
  run<T>(fn: () => Promise<T>): Promise<T | undefined>;
  clear(): void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async <T>(fn: () => Promise<T>) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(null) };
}
