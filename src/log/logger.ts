// Structured logging to stderr. Level "off" is No-Log: only operational lines without user data
// (start, stop, listener errors) are written; "info" and "debug" add per-event JSON lines.
// Never pass message content or passwords as fields.

export type LogLevel = "off" | "info" | "debug";

export type LogFields = Record<string, unknown>;

export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Operational message shown even in No-Log mode; must not carry user data. */
  system(msg: string): void;
  child(fields: LogFields): Logger;
}

const RANK: Record<LogLevel, number> = { off: 0, info: 1, debug: 2 };

export function createLogger(
  level: LogLevel,
  options: { write?: (line: string) => void; base?: LogFields; now?: () => Date } = {},
): Logger {
  const write = options.write ?? ((line: string) => console.error(line));
  const base = options.base ?? {};
  const now = options.now ?? (() => new Date());
  const emit = (lvl: string, msg: string, fields?: LogFields) => {
    const rec: LogFields = { ts: now().toISOString(), level: lvl, msg, ...base, ...fields };
    for (const [k, v] of Object.entries(rec)) {
      if (v instanceof Error) {
        rec[k] = level === "debug"
          ? `${v.name}: ${v.message}\n${v.stack}`
          : `${v.name}: ${v.message}`;
      }
    }
    write(JSON.stringify(rec));
  };
  return {
    level,
    debug: (msg, fields) => RANK[level] >= 2 && emit("debug", msg, fields),
    info: (msg, fields) => RANK[level] >= 1 && emit("info", msg, fields),
    warn: (msg, fields) => RANK[level] >= 1 && emit("warn", msg, fields),
    error: (msg, fields) => (RANK[level] >= 1 ? emit("error", msg, fields) : write(`tern: ${msg}`)),
    system: (msg) => (RANK[level] >= 1 ? emit("info", msg) : write(`tern: ${msg}`)),
    child: (fields) => createLogger(level, { write, now, base: { ...base, ...fields } }),
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger("off", { write: () => {} });
