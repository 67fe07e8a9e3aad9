// What an SMTP session needs from the relay: a few narrow calls. The app wires them to the account
// and delivery services; tests can wire anything.

export interface SmtpReply {
  code: number;
  /** Enhanced status code (RFC 3463), or "" when the reference relay sends none. */
  enhanced: string;
  text: string;
}

export interface SmtpEnvelope {
  /** Without angle brackets; "" is the null sender. */
  mailFrom: string;
  recipients: string[];
}

/**
 * One message on its way in, from DATA's first byte (maddy's Delivery): the session writes the
 * dot-unstuffed bytes as they arrive, then ends it (the reply; 250 only once the message is
 * stored) or aborts it (the client left, the message is too large or malformed: nothing stays).
 * Exactly one of end() and abort() is called.
 */
export interface SmtpDataTransaction {
  /**
   * The next bytes; resolves when more may be written (back-pressure). Never rejects. `text`:
   * the bytes as mime's byteText gives them, when the session had it (readers reuse it).
   */
  write(chunk: Uint8Array, text?: string): Promise<void>;
  end(): Promise<SmtpReply>;
  abort(): Promise<void>;
}

export interface SmtpBackend {
  /**
   * The account address on success, else the reply to send (535, 454…). `authzid`: the SASL
   * authorization identity, when the client gave a non-empty one.
   */
  authenticate(user: string, password: string, ip: string, authzid?: string): Promise<
    { address: string } | { reply: SmtpReply }
  >;
  /** Submission MAIL FROM check for the logged-in address (ownership, send rate). */
  checkSender(login: string, mailFrom: string): SmtpReply | null | Promise<SmtpReply | null>;
  checkRecipient(address: string, mode: "inbound" | "submission"): Promise<SmtpReply | null>;
  /** Starts receiving a message: a submission when `login` is set, else inbound mail. */
  beginData(envelope: SmtpEnvelope, login: string | null): SmtpDataTransaction;
}

export interface SmtpSessionHooks {
  /** Called once per DATA with the reply code, for metrics. */
  onResult?(kind: "submission" | "inbound", code: number, bytes: number): void;
  /** Every final reply to AUTH, MAIL, RCPT and DATA, for metrics by reason. */
  onReply?(stage: "auth" | "mail" | "rcpt" | "data", reply: SmtpReply): void;
}
