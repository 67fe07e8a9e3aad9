// A protocol session's server side on a real loopback socket, for tests that drive a session
// (IMAP, SMTP) with net's SocketConnection and its clocks, and read its replies line by line.

import net from "node:net";
import { SocketConnection } from "../../src/net/connection.ts";

/** The server's side of a loopback pair, taken for TLS (LOGIN and AUTH need it; TLS is not the point). */
export class TlsLikeConnection extends SocketConnection {
  override get isTls(): boolean {
    return true;
  }
}

export interface LoopbackPair {
  /** The server's side, for the session under test. */
  conn: TlsLikeConnection;
  /** The client's side. */
  client: net.Socket;
  /** The server's next reply line (null once it closed the connection); fails after 30 s. */
  line(): Promise<string | null>;
  /** Drops the client, waits for `done` (the session's run), closes the listener. */
  close(done: Promise<unknown>): Promise<void>;
}

/**
 * A listener on 127.0.0.1 and one client connected to it: the server's side of the connection,
 * the client's socket, and the listener to close.
 */
export async function socketPair(): Promise<
  { accepted: net.Socket; client: net.Socket; server: net.Server }
> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  client.on("error", () => {});
  return { accepted: await accepted, client, server };
}

/** socketPair with the server's side as a TlsLikeConnection, and a reader of the server's lines. */
export async function loopbackPair(): Promise<LoopbackPair> {
  const { accepted, client, server } = await socketPair();
  const conn = new TlsLikeConnection(accepted);
  let text = "";
  let wake: (() => void) | null = null;
  let ended = false;
  client.on("data", (b: Uint8Array) => {
    text += new TextDecoder().decode(b);
    wake?.();
  });
  client.on("close", () => {
    ended = true;
    wake?.();
  });
  return {
    conn,
    client,
    async line() {
      while (!text.includes("\r\n")) {
        if (ended) return null;
        await within30s(new Promise<void>((r) => (wake = r)));
      }
      const i = text.indexOf("\r\n");
      const l = text.slice(0, i);
      text = text.slice(i + 2);
      return l;
    },
    async close(done) {
      client.destroy();
      await done.catch(() => {});
      await new Promise((r) => server.close(r));
    },
  };
}

/** `next`, failing after 30 s (a bound, not a measurement). */
async function within30s(next: Promise<void>) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      next,
      new Promise((_, reject) =>
        timer = setTimeout(() => reject(new Error("nothing from the server in 30 s")), 30_000)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
