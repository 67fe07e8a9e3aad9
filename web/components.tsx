// Small building blocks shared by the pages: states (loading, error, empty), cards, buttons and
// formatting of sizes and times.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div class="state" role="status" aria-live="polite">
      <span class="spinner" />
      {label}
    </div>
  );
}

export function ErrorBox({ message, onRetry }: { message: string; onRetry?: () => void }) {
  return (
    <div class="state error" role="alert">
      <span>{message}</span>
      {onRetry && <button type="button" class="secondary" onClick={onRetry}>Try again</button>}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="state empty">{children}</div>;
}

export function Card(
  props: {
    title?: string;
    actions?: ComponentChildren;
    children: ComponentChildren;
    class?: string;
  },
) {
  return (
    <section class={`card ${props.class ?? ""}`}>
      {(props.title || props.actions) && (
        <header class="card-head">
          {props.title && <h2>{props.title}</h2>}
          {props.actions && <div class="card-actions">{props.actions}</div>}
        </header>
      )}
      {props.children}
    </section>
  );
}

/** A button that asks for a second click before a destructive action. */
export function ConfirmButton(
  props: { label: string; confirm: string; onConfirm: () => void; disabled?: boolean },
) {
  const [armed, setArmed] = useState(false);
  if (!armed) {
    return (
      <button
        type="button"
        class="danger ghost"
        disabled={props.disabled}
        onClick={() => setArmed(true)}
      >
        {props.label}
      </button>
    );
  }
  return (
    <span class="confirm">
      <button type="button" class="danger" onClick={() => (setArmed(false), props.onConfirm())}>
        {props.confirm}
      </button>
      <button type="button" class="secondary" onClick={() => setArmed(false)}>Cancel</button>
    </span>
  );
}

export function Badge(
  { tone, children }: { tone: "ok" | "warn" | "bad" | "muted"; children: ComponentChildren },
) {
  return <span class={`badge ${tone}`}>{children}</span>;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatTime(ms: number | null | undefined): string {
  if (!ms) return "never";
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function formatDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${seconds % 60}s`;
}
