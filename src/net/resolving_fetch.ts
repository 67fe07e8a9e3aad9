// A fetch() that finds hosts through the relay's own resolver. The built-in fetch asks the
// system (resolv.conf, /etc/hosts); with dns_server set, tern must ask that server and nothing
// else, also for push notifications and ACME. node:http(s) takes a `lookup` function: the name
// still goes into SNI, the certificate check and the Host header, the address comes from us.

import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { Buffer } from "node:buffer";

/** Addresses of a host name (IPv6 and IPv4 in any order); [] when it has none. */
export type Resolve = (host: string) => Promise<string[]>;

type LookupCallback = (
  err: Error | null,
  address: string | { address: string; family: number }[],
  family?: number,
) => void;

function lookupWith(resolve: Resolve) {
  return (host: string, options: { all?: boolean }, cb: LookupCallback) => {
    resolve(host).then((addresses) => {
      if (addresses.length === 0) {
        const err = Object.assign(new Error(`${host} has no address`), { code: "ENOTFOUND" });
        return cb(err, options?.all ? [] : "", 0);
      }
      const all = addresses.map((a) => ({ address: a, family: net.isIPv6(a) ? 6 : 4 }));
      if (options?.all) cb(null, all);
      else cb(null, all[0].address, all[0].family);
    }, (err) => cb(err instanceof Error ? err : new Error(String(err)), ""));
  };
}

async function bodyBytes(body: BodyInit | null | undefined): Promise<Buffer | null> {
  if (body === null || body === undefined) return null;
  return Buffer.from(await new Response(body).arrayBuffer());
}

/**
 * fetch() over node:http(s) with host names resolved by `resolve` (IP literals are used as they
 * are). Supports what tern sends: method, headers, a body, an AbortSignal; no redirects are
 * followed. `caCerts` replaces the trusted roots when given.
 */
export function resolvingFetch(resolve: Resolve, options: { caCerts?: string[] } = {}) {
  const lookup = lookupWith(resolve);
  return async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const request = input instanceof Request ? input : null;
    const url = new URL(request ? request.url : input as string | URL);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`unsupported URL scheme: ${url.protocol}`);
    }
    const method = (init.method ?? request?.method ?? "GET").toUpperCase();
    const headers = new Headers(init.headers ?? request?.headers);
    const body = await bodyBytes(init.body ?? (request?.body ? await request.arrayBuffer() : null));
    const signal = init.signal ?? request?.signal ?? undefined;
    signal?.throwIfAborted();
    const outgoing: Record<string, string> = {};
    headers.forEach((v, k) => (outgoing[k] = v));
    if (body) outgoing["content-length"] = String(body.length);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const secure = url.protocol === "https:";
    return await new Promise<Response>((resolvePromise, reject) => {
      const req = (secure ? https : http).request({
        host,
        port: url.port || (secure ? 443 : 80),
        path: url.pathname + url.search,
        method,
        headers: outgoing,
        lookup: net.isIP(host) ? undefined : lookup,
        servername: secure && !net.isIP(host) ? host : undefined,
        ...(secure && options.caCerts?.length ? { ca: options.caCerts } : {}),
      } as https.RequestOptions, (res) => {
        const responseHeaders = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined) continue;
          for (const one of Array.isArray(v) ? v : [v]) responseHeaders.append(k, one);
        }
        let done = false;
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            res.on("data", (c: Buffer) => {
              if (!done) controller.enqueue(new Uint8Array(c));
            });
            res.on("end", () => {
              if (!done) controller.close();
              done = true;
            });
            res.on("error", (e) => {
              if (!done) controller.error(e);
              done = true;
            });
          },
          cancel() {
            done = true;
            res.destroy();
          },
        });
        const status = res.statusCode ?? 0;
        // A Response cannot carry a body with these statuses.
        const empty = status === 204 || status === 304 || method === "HEAD";
        if (empty) res.resume();
        resolvePromise(
          new Response(empty ? null : stream, {
            status,
            statusText: res.statusMessage,
            headers: responseHeaders,
          }),
        );
      });
      const onAbort = () => req.destroy(signal?.reason ?? new Error("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      req.on("close", () => signal?.removeEventListener("abort", onAbort));
      req.on("error", (err) => reject(err));
      req.end(body ?? undefined);
    });
  };
}
