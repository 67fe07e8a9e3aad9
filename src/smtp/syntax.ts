// Envelope syntax of MAIL and RCPT (RFC 5321 §4.1.2, RFC 1870 SIZE, RFC 6152, RFC 6531).

/** "<addr>" → "addr", "<>" → "", a bare address is tolerated; null when malformed. */
export function parsePath(raw: string): string | null {
  let s = raw.trim();
  if (s.startsWith("<")) {
    if (!s.endsWith(">")) return null;
    s = s.slice(1, -1).trim();
    // Source routes (<@a,@b:user@c>) are obsolete; keep the mailbox.
    const colon = s.startsWith("@") ? s.indexOf(":") : -1;
    if (colon >= 0) s = s.slice(colon + 1);
  }
  if (s === "") return "";
  // Control characters (NUL, ESC…) would be echoed in replies and logs and carried into bounces.
  // deno-lint-ignore no-control-regex
  if (/[\s<>\x00-\x1f\x7f]/.test(s)) return null;
  const at = s.lastIndexOf("@");
  if (at <= 0 || at === s.length - 1) return null;
  return s;
}

export interface MailParams {
  size?: number;
  body?: "7BIT" | "8BITMIME" | "BINARYMIME";
  smtputf8: boolean;
}

/** Parameters after MAIL FROM:<…>; null when one is unknown or malformed. */
export function parseMailParams(raw: string): MailParams | null {
  const out: MailParams = { smtputf8: false };
  for (const p of raw.trim().split(/\s+/).filter(Boolean)) {
    const eq = p.indexOf("=");
    const key = (eq < 0 ? p : p.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? undefined : p.slice(eq + 1);
    if (key === "SIZE" && value !== undefined && /^\d{1,15}$/.test(value)) {
      out.size = Number(value);
    } else if (
      key === "BODY" && (value?.toUpperCase() === "7BIT" || value?.toUpperCase() === "8BITMIME")
    ) {
      out.body = value.toUpperCase() as MailParams["body"];
    } else if (key === "SMTPUTF8" && value === undefined) {
      out.smtputf8 = true;
    } else if ((key === "AUTH" || key === "RET" || key === "ENVID") && value !== undefined) {
      // Accepted and ignored (RFC 4954 AUTH=, RFC 3461 DSN parameters).
    } else {
      return null;
    }
  }
  return out;
}
