// The last line of defence of a long-running relay: an error that escapes every handler (a
// rejected promise nobody awaits, a throw in a timer or socket callback) is reported and the
// process keeps serving everyone else, instead of ending with "Uncaught (in promise)".

export type EscapedKind = "unhandled rejection" | "uncaught error";

/** Installs the guard; returns a function that removes it. */
export function installProcessGuard(report: (kind: EscapedKind, err: unknown) => void): () => void {
  const onRejection = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    report("unhandled rejection", e.reason);
  };
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    report("uncaught error", e.error ?? e.message);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  return () => {
    globalThis.removeEventListener("unhandledrejection", onRejection);
    globalThis.removeEventListener("error", onError);
  };
}

/** One line for the report: the error's stack (or text), never an object dump. */
export function describeEscaped(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}
