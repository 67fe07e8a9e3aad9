// Runs a Hono app (or any fetch handler) on Deno.serve, plain or HTTPS, and stops it cleanly.

import { parseHostPort } from "../net/mod.ts";

export interface TlsPems {
  certPem: string;
  keyPem: string;
}

export interface HttpServerOptions {
  /** "host:port"; port 0 picks a free port. */
  address: string;
  app: {
    fetch(
      request: Request,
      info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    ): Response | Promise<Response>;
  };
  /** PEMs for HTTPS, or a function read once at start. */
  tls?: TlsPems | (() => TlsPems);
}

export interface HttpServer {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, lets running requests finish, then resolves. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { host, port } = parseHostPort(options.address);
  const tls = typeof options.tls === "function" ? options.tls() : options.tls;
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    const onListen = (addr: Deno.NetAddr) => {
      let closing: Promise<void> | null = null;
      const close = () => closing ??= server.shutdown();
      resolve({ hostname: addr.hostname, port: addr.port, close, [Symbol.asyncDispose]: close });
    };
    try {
      const handler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) =>
        options.app.fetch(req, info);
      server = tls
        ? Deno.serve(
          { hostname: host, port, cert: tls.certPem, key: tls.keyPem, onListen },
          handler,
        )
        : Deno.serve({ hostname: host, port, onListen }, handler);
    } catch (err) {
      reject(
        new Error(`Cannot listen on ${options.address}: ${(err as Error).message}`, { cause: err }),
      );
    }
  });
}
