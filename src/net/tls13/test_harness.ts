// Test support for the TLS 1.3 engine: a loopback node:net server whose connections are served
// by Tls13ServerSession (echoing what each client sends), and certificates for it. Tests only.

import { createServer, type Server, type Socket } from "node:net";
import { generateSelfSigned } from "../self_signed.ts";
import { type Tls13Credentials, tls13Credentials } from "./credentials.ts";
import { Tls13ServerSession } from "./server.ts";

/** What the server saw of one connection. */
export interface ServedConnection {
  session: Tls13ServerSession;
  established: boolean;
  received: number;
  peerClosed: boolean;
  error: Error | null;
  /** Resolves when the socket has closed. */
  done: Promise<void>;
}

export interface EngineServer {
  port: number;
  connections: ServedConnection[];
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (port 0); every connection echoes what it decrypts. */
export async function startEngineServer(
  creds: Tls13Credentials,
  alpn?: string[],
): Promise<EngineServer> {
  const connections: ServedConnection[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    const session = new Tls13ServerSession(creds, { alpn });
    let closed!: () => void;
    const conn: ServedConnection = {
      session,
      established: false,
      received: 0,
      peerClosed: false,
      error: null,
      done: new Promise((resolve) => closed = resolve),
    };
    connections.push(conn);
    sock.on("data", (chunk: Uint8Array) => {
      const out = session.receive(new Uint8Array(chunk));
      for (const bytes of out.send) sock.write(bytes);
      if (out.error) {
        conn.error = out.error;
        sock.end();
        return;
      }
      if (out.established) conn.established = true;
      for (const d of out.data) {
        conn.received += d.length;
        sock.write(session.seal(d));
      }
      if (out.peerClosed) {
        conn.peerClosed = true;
        sock.end(session.close());
      }
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      sockets.delete(sock);
      closed();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    connections,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(connections.map((c) => c.done));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** tern's usual certificate: an ECDSA P-256 leaf under a local CA. */
export async function ecdsaCredentials(): Promise<{ creds: Tls13Credentials; caPem: string }> {
  const m = await generateSelfSigned(["localhost"]);
  return { creds: tls13Credentials(m.certPem, m.keyPem), caPem: m.caPem };
}

/** A self-signed certificate made by the openssl CLI (`keyArgs`: "rsa:2048", "ed25519"...). */
export async function opensslCredentials(
  newkey: string,
): Promise<{ creds: Tls13Credentials; caPem: string }> {
  const dir = await Deno.makeTempDir({ prefix: "tern-tls13-" });
  try {
    const args = ["req", "-x509", "-newkey", newkey, "-nodes", "-keyout", `${dir}/k.pem`];
    args.push("-out", `${dir}/c.pem`, "-days", "2", "-subj", "/CN=localhost");
    args.push("-addext", "subjectAltName=DNS:localhost");
    const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
      .output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    const certPem = await Deno.readTextFile(`${dir}/c.pem`);
    const keyPem = await Deno.readTextFile(`${dir}/k.pem`);
    return { creds: tls13Credentials(certPem, keyPem), caPem: certPem };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
