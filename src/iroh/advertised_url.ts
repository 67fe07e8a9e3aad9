// Which iroh relay URL tern offers in METADATA /shared/vendor/deltachat/irohrelay: exactly what
// works, or nothing (Delta Chat then has no relay of ours to use).
//
// iroh 0.35 clients check a relay's certificate against the web PKI roots built into them
// (webpki-roots) and nothing else: an https URL served with tern's self-signed certificate can
// never connect. So the embedded relay is offered over HTTPS only with a certificate from a CA
// (ACME or the operator's files) and otherwise over plain HTTP, as madmail offers its relay
// (`http://<ip>:3340`); relay traffic is end-to-end encrypted QUIC either way, plain HTTP only
// shows an observer the endpoint ids.

export interface RelaySources {
  /** The iroh_enabled setting. */
  enabled: boolean;
  /** The iroh_relay config value: null runs the embedded relay, "" offers none, else a URL. */
  configured: string | null;
  /** Host clients reach tern at: the mail domain, or the IPv4 address of an IP relay. */
  host: string;
  /** Another name of the server (the configured hostname), used when the certificate names
   *  it but not the domain. */
  altHost?: string;
  /**
   * Bound port of the HTTPS listener, whether its certificate is CA-issued, and the names it
   * holds (DNS names and IP addresses); null if the listener is off.
   */
  https: { port: number; trusted: boolean; names: string[] } | null;
  /** Bound port of the plain HTTP listener; null if off. */
  http: { port: number } | null;
}

export function advertisedRelayUrl(s: RelaySources): string | null {
  if (!s.enabled) return null;
  if (s.configured !== null) return s.configured || null;
  const named = s.https?.trusted
    ? [s.host, s.altHost].find((h) => h && s.https!.names.some((n) => certificateNames(n, h)))
    : undefined;
  if (s.https && named) return `https://${named}${s.https.port === 443 ? "" : `:${s.https.port}`}`;
  if (s.http) return `http://${s.host}${s.http.port === 80 ? "" : `:${s.http.port}`}`;
  return null;
}

/** Whether tern itself serves /relay (the embedded relay runs and is switched on). */
export function servesRelay(s: Pick<RelaySources, "enabled" | "configured">): boolean {
  return s.enabled && s.configured === null;
}

/** RFC 6125 §6.4: a name in a certificate matches a host exactly or as `*.` one label deep. */
export function certificateNames(name: string, host: string): boolean {
  const n = name.toLowerCase(), h = host.toLowerCase();
  if (n === h) return true;
  if (!n.startsWith("*.")) return false;
  const dot = h.indexOf(".");
  return dot > 0 && h.slice(dot + 1) === n.slice(2);
}
