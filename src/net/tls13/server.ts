// The server side of a TLS 1.3 connection (RFC 8446): a state machine fed the socket's bytes,
// answering with the bytes to write and the application data it decrypted. Full handshake with
// (EC)DHE only: no HelloRetryRequest, no PSK or tickets, no 0-RTT, no client certificates.
// Once established it keeps only the two directions' traffic secrets, keys, IVs and sequence
// numbers, and a partial record if one is pending.

import { randomBytes, timingSafeEqual } from "node:crypto";
import { Alert, PeerAlert, TlsAlert } from "./alert.ts";
import { ByteQueue, concat } from "./bytes.ts";
import { MAX_CLIENT_HELLO, negotiate } from "./client_hello.ts";
import { signWith, type Tls13Credentials } from "./credentials.ts";
import { exchange } from "./key_exchange.ts";
import {
  deriveSecret,
  finishedData,
  handshakeSecret,
  masterSecret,
  nextTrafficSecret,
  transcript,
} from "./key_schedule.ts";
import {
  certificate,
  certificateVerify,
  certificateVerifyContent,
  encryptedExtensions,
  finished,
  HandshakeType,
  keyUpdateNotRequested,
  parseClientHello,
  serverHello,
} from "./messages.ts";
import {
  ContentType,
  MAX_PLAINTEXT,
  plainRecord,
  type RawRecord,
  RecordProtection,
  RecordReader,
} from "./record.ts";

export interface TlsOutput {
  /** Bytes to write to the socket, in order (may be empty). */
  send: Uint8Array[];
  /** Decrypted application data, in order (the caller keeps them). */
  data: Uint8Array[];
  /** True on the call that verified the client's Finished. */
  established: boolean;
  /** The client sent close_notify: no more data will come (the server may still write). */
  peerClosed: boolean;
  /**
   * Fatal: the alert to send is the last item of `send`; the caller writes it, then destroys.
   * (When the client itself sent a fatal alert, a PeerAlert, nothing is added to `send`.)
   */
  error: Error | null;
}

export interface Tls13Options {
  /** ALPN protocols in the server's order of preference. */
  alpn?: string[];
}

type State = "hello" | "finished" | "open" | "done";

/**
 * Records in a row that carry no application data (empty records, KeyUpdates, the compatibility
 * change_cipher_spec, user_canceled warnings): beyond this the client is only burning CPU.
 */
const MAX_RECORDS_WITHOUT_DATA = 32;
/** Largest handshake message after the ClientHello (Finished is 48 bytes, KeyUpdate 1). */
const MAX_LATER_HANDSHAKE = 1024;

export class Tls13ServerSession {
  readonly #creds: Tls13Credentials;
  readonly #alpnOffer: string[] | null;
  #state: State = "hello";
  #reader = new RecordReader();
  /** Handshake bytes not yet a whole message (dropped when empty). */
  #handshake: ByteQueue | null = null;
  #read: RecordProtection | null = null;
  #write: RecordProtection | null = null;
  /** Between the server's flight and the client's Finished only. */
  #pending: { clientAppSecret: Uint8Array; clientFinished: Uint8Array } | null = null;
  #ccsSeen = false;
  /** The client's Finished verified (stays true after its close_notify). */
  #established = false;
  #withoutData = 0;
  #error: Error | null = null;
  #closed = false;
  #cipherSuite: string | null = null;
  #alpnProtocol: string | null = null;
  #serverName: string | null = null;

  constructor(creds: Tls13Credentials, options: Tls13Options = {}) {
    this.#creds = creds;
    this.#alpnOffer = options.alpn && options.alpn.length > 0 ? options.alpn : null;
  }

  get established(): boolean {
    return this.#established && this.#error === null;
  }

  get cipherSuite(): string | null {
    return this.#cipherSuite;
  }

  get alpnProtocol(): string | null {
    return this.#alpnProtocol;
  }

  get serverName(): string | null {
    return this.#serverName;
  }

  /** Feeds raw bytes from the socket, from the very first (the ClientHello). Never throws. */
  receive(bytes: Uint8Array): TlsOutput {
    const out: TlsOutput = {
      send: [],
      data: [],
      established: false,
      peerClosed: false,
      error: null,
    };
    if (this.#error) {
      out.error = this.#error;
      return out;
    }
    if (this.#state === "done") return out; // after close_notify everything is ignored
    try {
      this.#reader.push(bytes);
      for (let r = this.#reader.next(); r !== null; r = this.#reader.next()) {
        this.#record(r, out);
        if (out.peerClosed) {
          this.#reader.clear();
          break;
        }
      }
    } catch (e) {
      this.#fail(e, out);
    }
    return out;
  }

  /** Encrypts application data as one or more records (≤ 16 KiB plaintext each), concatenated. */
  seal(data: Uint8Array): Uint8Array {
    if (this.#error) throw new Error("TLS session failed", { cause: this.#error });
    if (this.#closed) throw new Error("TLS session closed");
    if (!this.#established) throw new Error("TLS session not established");
    const write = this.#write!;
    if (data.length <= MAX_PLAINTEXT) return write.seal(ContentType.applicationData, data);
    const records: Uint8Array[] = [];
    for (let at = 0; at < data.length; at += MAX_PLAINTEXT) {
      records.push(write.seal(ContentType.applicationData, data.subarray(at, at + MAX_PLAINTEXT)));
    }
    return concat(records);
  }

  /** A close_notify record (then seal() throws). */
  close(): Uint8Array {
    if (this.#closed) throw new Error("TLS session closed");
    this.#closed = true;
    return this.#alertRecord(Alert.closeNotify);
  }

  #alertRecord(description: number): Uint8Array {
    const body = Uint8Array.of(description === Alert.closeNotify ? 1 : 2, description);
    if (this.#write) return this.#write.seal(ContentType.alert, body);
    return plainRecord(ContentType.alert, body);
  }

  #fail(e: unknown, out: TlsOutput): void {
    const error = e instanceof Error ? e : new Error(String(e));
    if (!(error instanceof PeerAlert)) {
      const alert = error instanceof TlsAlert ? error.alert : Alert.internalError;
      try {
        if (!this.#closed) out.send.push(this.#alertRecord(alert));
      } catch {
        // no alert if even that cannot be sealed (sequence number exhausted)
      }
    }
    out.error = this.#error = error;
    this.#closed = true;
    this.#reader.clear();
    this.#handshake =
      this.#read =
      this.#write =
      this.#pending =
        null;
  }

  #record(r: RawRecord, out: TlsOutput): void {
    const plaintext = this.#state === "hello" || r.type !== ContentType.applicationData;
    if (plaintext && r.fragment.length > MAX_PLAINTEXT) {
      throw new TlsAlert(Alert.recordOverflow, "plaintext record over 2^14 bytes");
    }
    // Before the ClientHello is answered everything is plaintext.
    if (this.#state === "hello") {
      if (r.type === ContentType.handshake) {
        return this.#handshakeBytes(r.fragment, out);
      }
      if (r.type === ContentType.alert) return this.#alert(r.fragment, out);
      throw new TlsAlert(Alert.unexpectedMessage, `record type ${r.type} before ClientHello`);
    }
    if (r.type === ContentType.applicationData) {
      const { type, content } = this.#read!.open(r);
      if (type === ContentType.handshake) return this.#handshakeBytes(content, out);
      if (type === ContentType.alert) return this.#alert(content, out);
      if (type === ContentType.applicationData && this.#state === "open") {
        if (content.length > 0) {
          this.#withoutData = 0;
          out.data.push(content);
        } else this.#countWithoutData();
        return;
      }
      throw new TlsAlert(Alert.unexpectedMessage, `protected record type ${type} unexpected`);
    }
    // Until the client's Finished: one compatibility change_cipher_spec (RFC 8446 §5), and a
    // plaintext alert from a client that could not read the ServerHello.
    if (this.#state === "finished") {
      if (r.type === ContentType.changeCipherSpec) {
        const f = r.fragment;
        if (this.#ccsSeen || f.length !== 1 || f[0] !== 1) {
          throw new TlsAlert(Alert.unexpectedMessage, "unexpected change_cipher_spec");
        }
        this.#ccsSeen = true;
        return;
      }
      if (r.type === ContentType.alert) return this.#alert(r.fragment, out);
    }
    throw new TlsAlert(Alert.unexpectedMessage, `plaintext record type ${r.type} unexpected`);
  }

  #countWithoutData(): void {
    if (++this.#withoutData > MAX_RECORDS_WITHOUT_DATA) {
      throw new TlsAlert(Alert.unexpectedMessage, "too many records without application data");
    }
  }

  #alert(fragment: Uint8Array, out: TlsOutput): void {
    // One alert per record, never fragmented (§5.1).
    if (fragment.length !== 2) throw new TlsAlert(Alert.decodeError, "malformed alert");
    const description = fragment[1];
    if (description === Alert.closeNotify) {
      out.peerClosed = true;
      this.#state = "done";
      return;
    }
    if (description === Alert.userCanceled) return this.#countWithoutData();
    throw new PeerAlert(description);
  }

  /** Adds handshake bytes and handles each whole message in them. */
  #handshakeBytes(fragment: Uint8Array, out: TlsOutput): void {
    if (fragment.length === 0) {
      throw new TlsAlert(Alert.unexpectedMessage, "empty handshake fragment");
    }
    const q = this.#handshake ??= new ByteQueue();
    q.push(fragment);
    while (q.length >= 4) {
      const type = q.at(0);
      const length = (q.at(1) << 16) | (q.at(2) << 8) | q.at(3);
      this.#checkExpected(type, length);
      if (q.length < 4 + length) return;
      const message = q.take(4 + length);
      // Every message the server takes changes keys, so it must end its record (§5.1).
      if (q.length > 0) {
        throw new TlsAlert(Alert.unexpectedMessage, "handshake data after a key change");
      }
      this.#handshake = null;
      this.#message(type, message, out);
    }
  }

  /** Refuses an unexpected message type, or an oversized one, from its header alone. */
  #checkExpected(type: number, length: number): void {
    const expected = this.#state === "hello"
      ? HandshakeType.clientHello
      : this.#state === "finished"
      ? HandshakeType.finished
      : HandshakeType.keyUpdate;
    if (type !== expected) {
      throw new TlsAlert(Alert.unexpectedMessage, `handshake message ${type} unexpected`);
    }
    const limit = this.#state === "hello" ? MAX_CLIENT_HELLO : MAX_LATER_HANDSHAKE;
    if (length > limit) throw new TlsAlert(Alert.decodeError, `handshake message ${type} too long`);
  }

  #message(type: number, message: Uint8Array, out: TlsOutput): void {
    const body = message.subarray(4);
    if (type === HandshakeType.clientHello) return this.#clientHello(message, out);
    if (type === HandshakeType.finished) return this.#clientFinished(body, out);
    return this.#keyUpdate(body, out);
  }

  #clientHello(message: Uint8Array, out: TlsOutput): void {
    const hello = parseClientHello(message.subarray(4));
    const chosen = negotiate(hello, this.#creds);
    const suite = chosen.suite;
    this.#cipherSuite = suite.name;
    this.#serverName = hello.serverName;
    // ALPN (RFC 7301): the first of the server's protocols the client offers. When none is
    // common the extension is left out and the handshake goes on, as node:tls does for a server
    // configured without ALPN (tern's IMAP and SMTP listeners).
    const offered = hello.alpn;
    this.#alpnProtocol = offered && this.#alpnOffer
      ? this.#alpnOffer.find((p) => offered.includes(p)) ?? null
      : null;
    const { serverShare, shared } = exchange(chosen.group, chosen.clientShare);
    const sh = serverHello(randomBytes(32), hello.sessionId, suite.code, chosen.group, serverShare);
    const th = transcript(suite, message, sh);
    const handshake = handshakeSecret(suite, shared);
    const helloHash = th.hash();
    const clientSecret = deriveSecret(suite, handshake, "c hs traffic", helloHash);
    const serverSecret = deriveSecret(suite, handshake, "s hs traffic", helloHash);
    const ee = encryptedExtensions(this.#alpnProtocol, hello.serverName !== null);
    const cert = certificate(this.#creds.chain);
    th.add(ee);
    th.add(cert);
    const signed = certificateVerifyContent(th.hash());
    const cv = certificateVerify(chosen.scheme, signWith(this.#creds.key, chosen.scheme, signed));
    th.add(cv);
    const fin = finished(finishedData(suite, serverSecret, th.hash()));
    th.add(fin);
    const finishedHash = th.hash();
    const master = masterSecret(suite, handshake);
    this.#pending = {
      clientAppSecret: deriveSecret(suite, master, "c ap traffic", finishedHash),
      clientFinished: finishedData(suite, clientSecret, finishedHash),
    };

    out.send.push(plainRecord(ContentType.handshake, sh));
    // Middlebox compatibility (RFC 8446 §D.4): a client that sent a session id gets a
    // change_cipher_spec right after the ServerHello.
    if (hello.sessionId.length > 0) {
      out.send.push(plainRecord(ContentType.changeCipherSpec, Uint8Array.of(1)));
    }
    // Both directions' secrets, keys and IVs in one array.
    const size = RecordProtection.size(suite);
    const keys = new Uint8Array(2 * size);
    const write = new RecordProtection(suite, serverSecret, keys, 0);
    const flight = concat([ee, cert, cv, fin]);
    for (let at = 0; at < flight.length; at += MAX_PLAINTEXT) {
      out.send.push(write.seal(ContentType.handshake, flight.subarray(at, at + MAX_PLAINTEXT)));
    }
    write.rekey(deriveSecret(suite, master, "s ap traffic", finishedHash));
    this.#write = write;
    this.#read = new RecordProtection(suite, clientSecret, keys, size);
    this.#state = "finished";
  }

  #clientFinished(body: Uint8Array, out: TlsOutput): void {
    const pending = this.#pending!;
    if (body.length !== pending.clientFinished.length) {
      throw new TlsAlert(Alert.decodeError, "Finished of the wrong length");
    }
    if (!timingSafeEqual(body, pending.clientFinished)) {
      throw new TlsAlert(Alert.decryptError, "the client's Finished does not verify");
    }
    this.#read!.rekey(pending.clientAppSecret);
    this.#pending = null;
    this.#state = "open";
    this.#established = out.established = true;
  }

  #keyUpdate(body: Uint8Array, out: TlsOutput): void {
    if (body.length !== 1) throw new TlsAlert(Alert.decodeError, "malformed KeyUpdate");
    const requested = body[0];
    if (requested > 1) throw new TlsAlert(Alert.illegalParameter, "bad KeyUpdate request");
    this.#countWithoutData();
    const read = this.#read!;
    read.rekey(nextTrafficSecret(read.suite, read.secret));
    if (requested === 1 && !this.#closed) {
      const write = this.#write!;
      out.send.push(write.seal(ContentType.handshake, keyUpdateNotRequested()));
      write.rekey(nextTrafficSecret(write.suite, write.secret));
    }
  }
}
