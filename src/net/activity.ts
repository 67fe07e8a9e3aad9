// A count of what clients do: connections made and data received (src/net/connection.ts: IMAP,
// SMTP, the iroh relay), HTTP connections and requests (src/http/server.ts), TURN datagrams
// (src/turn/server.ts), and outbound deliveries' connections, writes and replies
// (src/federation/conn.ts). It stands still only while no client does anything and nothing is
// delivered, which is what the quiet collector (src/quiet_collector.ts) waits for.

let count = 0;

/** A client connected, sent something or made a request. */
export function noteActivity(): void {
  count++;
}

/** Changes whenever noteActivity() was called. */
export function activityCount(): number {
  return count;
}
