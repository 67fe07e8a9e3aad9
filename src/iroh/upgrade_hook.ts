// Hands HTTP/1.1 upgrades of the relay paths to the relay: the HTTP listener shows each
// connection's first request head to a takeover (iroh's `Upgrade: iroh derp http` comes without
// `Connection: Upgrade`, which node:http's upgrade event would need), and the socket becomes the
// relay client's connection with the bytes read after the head put back in front.

import type net from "node:net";
import { SocketConnection } from "../net/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { IrohRelay } from "./iroh_relay.ts";

/** The first request head of a connection (the HTTP listener's takeover argument). */
export interface FirstRequest {
  method: string;
  path: string;
  headers: Headers;
}

/** Takes the connection (true) or leaves it to HTTP (false). */
export type UpgradeHook = (head: FirstRequest, socket: net.Socket, rest: Uint8Array) => boolean;

export function relayUpgradeHook(
  relay: IrohRelay,
  options: { allowed?: () => boolean; signal: AbortSignal; log?: Logger },
): UpgradeHook {
  return (req, socket, rest) => {
    if (options.allowed && !options.allowed()) return false;
    if (!relay.accepts(req)) return false;
    const conn = new SocketConnection(socket);
    conn.unread(rest);
    relay.serve(conn, req, options.signal).catch((err) =>
      options.log?.debug("iroh relay: connection failed", { err: (err as Error).message })
    );
    return true;
  };
}
