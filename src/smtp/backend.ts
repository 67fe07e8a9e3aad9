// What an SMTP session needs from the relay: four narrow calls. The app wires them to the account
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

export interface SmtpBackend {
  /** The account address on success, else the reply to send (535, 454…). */
  authenticate(user: string, password: string, ip: string): Promise<
    { address: string } | { reply: SmtpReply }
  >;
  /** Submission MAIL FROM check for the logged-in address (ownership, send rate). */
  checkSender(login: string, mailFrom: string): SmtpReply | null | Promise<SmtpReply | null>;
  checkRecipient(address: string, mode: "inbound" | "submission"): Promise<SmtpReply | null>;
  /** Accepts (durably) or refuses a complete message. */
  submit(login: string, envelope: SmtpEnvelope, message: Uint8Array): Promise<SmtpReply>;
  receive(envelope: SmtpEnvelope, message: Uint8Array): Promise<SmtpReply>;
}

export interface SmtpSessionHooks {
  /** Called once per DATA with the reply code, for metrics. */
  onResult?(kind: "submission" | "inbound", code: number, bytes: number): void;
  /** Every final reply to AUTH, MAIL, RCPT and DATA, for metrics by reason. */
  onReply?(stage: "auth" | "mail" | "rcpt" | "data", reply: SmtpReply): void;
}
