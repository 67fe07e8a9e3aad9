// The IMAP command vocabulary shared by the parser, the FETCH/SEARCH renderers and the session
// (RFC 3501/9051 plus the extensions tern serves). Parsing produces these; nothing here does I/O.

import type { AppendUpload } from "./backend.ts";

/** One range of a sequence set; `null` stands for "*" (the largest number in use). */
export interface SeqRange {
  from: number | null;
  to: number | null;
}

/** A sequence set as written: ranges in order, or "$" (the saved search result, RFC 5182). */
export type SequenceSet = { ranges: SeqRange[] } | { saved: true };

/** BODY[section]: part path (1-based numbers, may be empty) then an optional specifier. */
export interface Section {
  part: number[];
  specifier: "" | "HEADER" | "HEADER.FIELDS" | "HEADER.FIELDS.NOT" | "TEXT" | "MIME";
  /** Field names for HEADER.FIELDS (NOT), uppercased. */
  fields?: string[];
}

export type FetchItem =
  | { kind: "FLAGS" }
  | { kind: "UID" }
  | { kind: "INTERNALDATE" }
  | { kind: "RFC822.SIZE" }
  | { kind: "ENVELOPE" }
  | { kind: "BODYSTRUCTURE" }
  /** BODY without a section: the non-extensible BODYSTRUCTURE. */
  | { kind: "BODY" }
  | { kind: "MODSEQ" }
  /** RFC822 = BODY[], RFC822.HEADER = BODY.PEEK[HEADER], RFC822.TEXT = BODY[TEXT]. */
  | { kind: "RFC822" }
  | { kind: "RFC822.HEADER" }
  | { kind: "RFC822.TEXT" }
  | {
    kind: "BODY[]";
    peek: boolean;
    section: Section;
    partial?: { offset: number; length: number };
    /** The name as the response must echo it, e.g. `BODY[HEADER.FIELDS (FROM)]<0>`. */
    label: string;
  }
  /** BINARY[part] / BINARY.PEEK / BINARY.SIZE (RFC 3516). */
  | {
    kind: "BINARY";
    peek: boolean;
    part: number[];
    partial?: { offset: number; length: number };
    label: string;
  }
  | { kind: "BINARY.SIZE"; part: number[]; label: string };

export type SearchKey =
  | { kind: "ALL" }
  | { kind: "SEQ"; set: SequenceSet }
  | { kind: "UID"; set: SequenceSet }
  | { kind: "FLAG"; flag: string; negate: boolean }
  | { kind: "NEW" }
  | { kind: "OLD" }
  | { kind: "RECENT" }
  | { kind: "HEADER"; field: string; value: string }
  | { kind: "BODY"; value: string }
  | { kind: "TEXT"; value: string }
  /** Dates are UTC midnight of the given day, in ms; ON/BEFORE/SINCE on INTERNALDATE. */
  | { kind: "DATE"; op: "BEFORE" | "ON" | "SINCE"; date: number; sent: boolean }
  | { kind: "SIZE"; op: "LARGER" | "SMALLER"; size: number }
  | { kind: "MODSEQ"; modSeq: number }
  /** RFC 5032. */
  | { kind: "AGE"; op: "OLDER" | "YOUNGER"; seconds: number }
  | { kind: "NOT"; key: SearchKey }
  | { kind: "OR"; left: SearchKey; right: SearchKey }
  | { kind: "AND"; keys: SearchKey[] };

export type StatusItem =
  | "MESSAGES"
  | "RECENT"
  | "UIDNEXT"
  | "UIDVALIDITY"
  | "UNSEEN"
  | "HIGHESTMODSEQ"
  | "SIZE"
  | "DELETED";

export interface QresyncParams {
  uidValidity: number;
  modSeq: number;
  knownUids?: SequenceSet;
  seqMatch?: { seqs: SequenceSet; uids: SequenceSet };
}

/** A parsed command. `tag` is echoed; `uid` marks the UID variant of FETCH/STORE/… */
export type Command =
  & { tag: string }
  & (
    | { name: "CAPABILITY" | "NOOP" | "LOGOUT" | "STARTTLS" | "CHECK" | "CLOSE" | "UNSELECT" }
    | { name: "IDLE" | "NAMESPACE" }
    | { name: "LOGIN"; user: string; password: string }
    | { name: "AUTHENTICATE"; mechanism: string; initial?: string }
    | { name: "ENABLE"; capabilities: string[] }
    | { name: "ID"; params: Record<string, string | null> | null }
    | { name: "COMPRESS"; mechanism: string }
    | {
      name: "SELECT" | "EXAMINE";
      mailbox: string;
      condstore: boolean;
      qresync?: QresyncParams;
    }
    | { name: "CREATE"; mailbox: string; specialUse?: string[] }
    | { name: "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE"; mailbox: string }
    | { name: "RENAME"; from: string; to: string }
    | {
      name: "LIST" | "LSUB";
      reference: string;
      patterns: string[];
      /** LIST-EXTENDED selection options, uppercased (SUBSCRIBED, SPECIAL-USE, …). */
      select: string[];
      /** RETURN options: SUBSCRIBED, CHILDREN, SPECIAL-USE, and STATUS items (LIST-STATUS). */
      returnOptions: string[];
      returnStatus?: StatusItem[];
    }
    | { name: "STATUS"; mailbox: string; items: StatusItem[] }
    | {
      name: "APPEND";
      mailbox: string;
      flags: string[];
      /** ms since epoch, when given. */
      date?: number;
      /** The literal as read; empty when it was streamed into `upload`. */
      message: Uint8Array;
      /** Where the message literal was streamed (set by the session, not the parser). */
      upload?: AppendUpload;
    }
    | { name: "EXPUNGE" }
    | { name: "UID EXPUNGE"; set: SequenceSet }
    | {
      name: "SEARCH";
      uid: boolean;
      key: SearchKey;
      /** ESEARCH RETURN options (MIN MAX COUNT ALL SAVE); undefined = plain SEARCH response. */
      returnOptions?: string[];
      charset?: string;
    }
    | {
      name: "FETCH";
      uid: boolean;
      set: SequenceSet;
      items: FetchItem[];
      changedSince?: number;
      vanished: boolean;
    }
    | {
      name: "STORE";
      uid: boolean;
      set: SequenceSet;
      mode: "add" | "remove" | "replace";
      silent: boolean;
      flags: string[];
      unchangedSince?: number;
    }
    | { name: "COPY" | "MOVE"; uid: boolean; set: SequenceSet; mailbox: string }
    | { name: "GETQUOTA"; root: string }
    | { name: "GETQUOTAROOT"; mailbox: string }
    | {
      name: "GETMETADATA";
      mailbox: string;
      entries: string[];
      maxSize?: number;
      depth: "0" | "1" | "infinity";
    }
    | { name: "SETMETADATA"; mailbox: string; entries: { entry: string; value: string | null }[] }
  );

export type CommandName = Command["name"];

/** The command variant(s) carrying the given name. */
export type CommandOf<N extends CommandName> = Command extends infer C
  ? C extends { name: infer M } ? N extends M ? C : never : never
  : never;
