// Test clients for the TURN server: a loopback UDP endpoint that collects datagrams and a TURN
// client doing the long-term-credential round trip. Used by the unit and end-to-end tests only.

import assert from "node:assert/strict";
import dgram from "node:dgram";
import type { TurnServer } from "../server.ts";
import { longTermKey } from "../credentials.ts";
import {
  Attr,
  Class,
  decodeErrorCode,
  decodeStun,
  encodeStun,
  encodeXorAddress,
  getAttr,
  Method,
  text,
  utf8,
} from "../stun.ts";
import type { DecodedStun, StunAttribute, TransportAddress } from "../stun.ts";

/** A UDP endpoint on loopback that collects what it receives. */
export class Endpoint {
  #queue: { data: Uint8Array; address: string; port: number }[] = [];
  #waiters: (() => void)[] = [];
  private constructor(readonly socket: dgram.Socket, readonly port: number) {
    socket.on("message", (data, rinfo) => {
      this.#queue.push({ data: new Uint8Array(data), address: rinfo.address, port: rinfo.port });
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static open(host = "127.0.0.1"): Promise<Endpoint> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
      s.once("error", reject);
      s.bind(0, host, () => resolve(new Endpoint(s, s.address().port)));
    });
  }

  send(bytes: Uint8Array, port: number, host = "127.0.0.1") {
    this.socket.send(bytes, port, host);
  }

  /** The next datagram matching `pick`, or null after timeoutMs. */
  async recv(
    timeoutMs = 2000,
    pick: (d: Uint8Array) => boolean = () => true,
  ): Promise<{ data: Uint8Array; address: string; port: number } | null> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const i = this.#queue.findIndex((x) => pick(x.data));
      if (i >= 0) return this.#queue.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) return null;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
        this.#waiters.push(resolve);
      });
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** A TURN client speaking to the server under test. */
export class Client {
  key?: Uint8Array;
  nonce = "";
  username = "";
  constructor(
    readonly ep: Endpoint,
    readonly serverPort: number,
    readonly realm: string,
    readonly serverHost = "127.0.0.1",
  ) {}

  /** A client bound to `host`, talking to the server on the loopback address of its family. */
  static async open(
    server: Pick<TurnServer, "port">,
    host = "127.0.0.1",
    realm = "example.org",
  ): Promise<Client> {
    const serverHost = host.includes(":") ? "::1" : "127.0.0.1";
    return new Client(await Endpoint.open(host), server.port, realm, serverHost);
  }

  /** Sends a request and waits for the response with the same transaction id. */
  async request(
    method: number,
    attributes: StunAttribute[],
    opts: { auth?: boolean; fingerprint?: boolean; tid?: Uint8Array } = {},
  ): Promise<DecodedStun> {
    const tid = opts.tid ?? crypto.getRandomValues(new Uint8Array(12));
    const attrs = [...attributes];
    if (opts.auth !== false && this.key) {
      attrs.push(
        { type: Attr.Username, value: utf8(this.username) },
        { type: Attr.Realm, value: utf8(this.realm) },
        { type: Attr.Nonce, value: utf8(this.nonce) },
      );
    }
    const bytes = encodeStun(
      { method, cls: Class.Request, transactionId: tid, attributes: attrs },
      {
        integrityKey: opts.auth !== false ? this.key : undefined,
        fingerprint: opts.fingerprint,
      },
    );
    const hex = tid.join(",");
    // Retransmits like a STUN client (RFC 5389 7.2.1), as UDP may drop under load.
    let got = null;
    for (let i = 0; i < 5 && !got; i++) {
      this.ep.send(bytes, this.serverPort, this.serverHost);
      got = await this.ep.recv(500, (d) => {
        const m = decodeStun(d);
        return !!m && m.transactionId.join(",") === hex;
      });
    }
    assert.ok(got, `no response to method ${method}`);
    return decodeStun(got.data)!;
  }

  /** Allocate with the 401 round trip; returns the success response. */
  async allocate(
    creds: { username: string; password: string },
    extra: StunAttribute[] = [transport(17)],
  ): Promise<DecodedStun> {
    const first = await this.request(Method.Allocate, extra, { auth: false });
    assert.equal(errorCode(first), 401);
    assert.equal(text(getAttr(first, Attr.Realm)), this.realm);
    this.nonce = text(getAttr(first, Attr.Nonce))!;
    assert.ok(this.nonce);
    this.username = creds.username;
    this.key = longTermKey(creds.username, this.realm, creds.password);
    return await this.request(Method.Allocate, extra);
  }

  send(bytes: Uint8Array) {
    this.ep.send(bytes, this.serverPort, this.serverHost);
  }

  close() {
    return this.ep.close();
  }
}

export function transport(proto: number): StunAttribute {
  return { type: Attr.RequestedTransport, value: new Uint8Array([proto, 0, 0, 0]) };
}

export function peerAttr(peer: TransportAddress, tid: Uint8Array): StunAttribute {
  return { type: Attr.XorPeerAddress, value: encodeXorAddress(peer, tid) };
}

export function errorCode(m: DecodedStun): number | null {
  return m.cls === Class.Error ? decodeErrorCode(getAttr(m, Attr.ErrorCode))?.code ?? -1 : null;
}
