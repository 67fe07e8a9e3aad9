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
  /** PEMs for HTTPS, or a function read at start and at every reload. */
  tls?: TlsPems | (() => TlsPems);
}

export interface HttpServer {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, lets running requests finish, then resolves. */
  close(): Promise<void>;
  /**
   * HTTPS: takes up the current certificate. The listener is rebound on the same port (Deno.serve
   * cannot swap certificates); requests already running finish on the old one.
   */
  reload(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { host, port } = parseHostPort(options.address);
  const pems = () => typeof options.tls === "function" ? options.tls() : options.tls;
  const handler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) =>
    options.app.fetch(req, info);
  const serve = (p: number) =>
    new Promise<{ server: Deno.HttpServer<Deno.NetAddr>; addr: Deno.NetAddr }>(
      (resolve, reject) => {
        try {
          const tls = pems();
          const common = { hostname: host, port: p, onListen: () => {} };
          const server = tls
            ? Deno.serve({ ...common, cert: tls.certPem, key: tls.keyPem }, handler)
            : Deno.serve(common, handler);
          resolve({ server, addr: server.addr });
        } catch (err) {
          reject(
            new Error(`Cannot listen on ${options.address}: ${(err as Error).message}`, {
              cause: err,
            }),
          );
        }
      },
    );
  let current = await serve(port);
  let closing: Promise<void> | null = null;
  const close = () => closing ??= current.server.shutdown();
  return {
    hostname: current.addr.hostname,
    port: current.addr.port,
    close,
    [Symbol.asyncDispose]: close,
    async reload() {
      if (!options.tls || closing) return;
      const old = current;
      const drained = old.server.shutdown();
      // The old listener closes at once; bind again as soon as the port is free.
      for (let i = 0;; i++) {
        try {
          current = await serve(old.addr.port);
          break;
        } catch (err) {
          if (i >= 100) throw err;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      await drained;
    },
  };
}
