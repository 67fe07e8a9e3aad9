// Mailbox commands: SELECT/EXAMINE (with CONDSTORE/QRESYNC, RFC 7162), CREATE, DELETE, RENAME,
// SUBSCRIBE, UNSUBSCRIBE, LIST/LSUB (with LIST-EXTENDED, SPECIAL-USE, LIST-STATUS), STATUS,
// APPEND (UIDPLUS), CLOSE, UNSELECT.

import { isStorageFull } from "../errors.ts";
import type { MailboxRecord } from "../store/types.ts";
import type { CommandTable, SessionContext } from "./session.ts";
import type { Command, CommandOf, StatusItem } from "./types.ts";
import { bad, ImapNo, mailboxName } from "./responses.ts";
import { SelectedMailbox } from "./selected.ts";
import { BinaryToBase64 } from "./binary_append.ts";
import { setIntervals } from "./sequence_set.ts";
import { expungeDeleted } from "./message_commands.ts";
import { changedTargets, expungedUids, writeVanishedEarlier } from "./scan.ts";
import { UidSet } from "./uid_set.ts";

const AUTHED = ["auth", "selected"] as const;
const DELIMITER = ".";
const SPECIAL_USES = new Set([
  "\\All",
  "\\Archive",
  "\\Drafts",
  "\\Flagged",
  "\\Junk",
  "\\Sent",
  "\\Trash",
]);

type Of<N extends Command["name"]> = CommandOf<N>;

/** Expunges and changes per store read during a QRESYNC resync. */
const QRESYNC_PAGE = 1000;
/** Messages counted per store step (STATUS DELETED). */
const COUNT_WINDOW = 8000;

function checkName(name: string): string {
  const n = name.endsWith(DELIMITER) ? name.slice(0, -1) : name;
  if (n === "" || n.length > 255 || n.split(DELIMITER).some((p) => p === "")) {
    throw new ImapNo("Invalid mailbox name", "CANNOT");
  }
  return n;
}

async function closeSelected(ctx: SessionContext, expunge: boolean) {
  const sel = ctx.selected;
  if (!sel) return;
  if (expunge && !sel.readOnly) await expungeDeleted(ctx, sel.uids);
  ctx.selected = null;
  ctx.state = "auth";
}

async function select(ctx: SessionContext, cmd: Of<"SELECT" | "EXAMINE">) {
  const accountId = ctx.user!.accountId;
  const mailboxes = ctx.backend.mailboxes;
  if (ctx.selected) {
    await closeSelected(ctx, false);
    // RFC 7162 §3.2.11: tell a QRESYNC client that the old mailbox is closed.
    if (ctx.enabled.has("QRESYNC")) ctx.out("* OK [CLOSED] Previous mailbox closed\r\n");
  }
  if (cmd.qresync && !ctx.enabled.has("QRESYNC")) throw bad("QRESYNC is not enabled");
  if (cmd.condstore) ctx.enabled.add("CONDSTORE");
  const mb = await mailboxes.getMailbox(accountId, cmd.mailbox);
  if (!mb) throw new ImapNo("No such mailbox", "NONEXISTENT");
  const readOnly = cmd.name === "EXAMINE";
  // The UIDs below UIDNEXT in pages, counts from the mailbox row, keywords from their table:
  // nothing here reads the messages themselves.
  const sel = await SelectedMailbox.open(mailboxes, mb, readOnly, ctx);
  for (const l of sel.flagLines()) ctx.out(l + "\r\n");
  ctx.out(`* ${sel.exists} EXISTS\r\n`);
  // This session takes \Recent for what arrived since the last SELECT (EXAMINE only counts).
  // Best-effort, as Dovecot's index updates: on a full disk the mailbox still opens (that is
  // how users delete mail to free space), with no message \Recent.
  if (!readOnly) {
    await sel.claimRecent(mailboxes).catch((err) => {
      if (!isStorageFull(err)) throw err;
      ctx.log?.debug("recent not claimed: storage full", { error: String(err) });
    });
  }
  ctx.out(`* ${readOnly ? mb.recent : sel.recentCount()} RECENT\r\n`);
  const unseen = await mailboxes.firstUnseenUid(mb.id, mb.uidNext);
  const firstUnseen = unseen === null ? 0 : sel.seqOf(unseen);
  if (firstUnseen) ctx.out(`* OK [UNSEEN ${firstUnseen}] First unseen\r\n`);
  ctx.out(`* OK [UIDVALIDITY ${mb.uidValidity}] UIDs valid\r\n`);
  ctx.out(`* OK [UIDNEXT ${mb.uidNext}] Predicted next UID\r\n`);
  ctx.out(`* OK [HIGHESTMODSEQ ${mb.highestModSeq}] Highest\r\n`);
  if (cmd.qresync && cmd.qresync.uidValidity === mb.uidValidity) {
    await qresyncReport(ctx, sel, cmd.qresync);
  }
  ctx.selected = sel;
  ctx.state = "selected";
  ctx.changeSignal.dirty = true;
  return `[${readOnly ? "READ-ONLY" : "READ-WRITE"}] ${cmd.name} completed`;
}

/**
 * RFC 7162 §3.2.5.1: what changed since the client's MODSEQ, as VANISHED (EARLIER) and FETCH,
 * read through the modseq indexes (cost follows the changes). When the tombstones that far back
 * are gone, every UID below UIDNEXT the mailbox does not have is reported (§3.2.5.2 allows it).
 */
async function qresyncReport(
  ctx: SessionContext,
  sel: SelectedMailbox,
  q: NonNullable<Of<"SELECT">["qresync"]>,
) {
  const mailboxes = ctx.backend.mailboxes;
  const mb = sel.mailbox;
  const top = Math.max(mb.uidNext - 1, 1);
  const known = q.knownUids && "ranges" in q.knownUids
    ? UidSet.fromIntervals(setIntervals(q.knownUids, top))
    : UidSet.range(1, top);
  const state = await mailboxes.mailboxState(mb.id);
  let vanished: UidSet;
  if ((state?.expungeHorizonModSeq ?? 0) > q.modSeq) {
    vanished = known.within([[1, mb.uidNext - 1]]).difference(sel.uids);
  } else {
    const gone = await expungedUids(mailboxes, mb.id, {
      sinceModSeq: q.modSeq,
      upToModSeq: sel.modSeq,
    }, ctx);
    vanished = gone.intersect(known);
  }
  await writeVanishedEarlier(ctx, vanished);
  for await (
    const rows of changedTargets(mailboxes, mb.id, sel.uids, q.modSeq, ctx, QRESYNC_PAGE)
  ) {
    for (const m of rows) {
      const seq = sel.seqOf(m.uid);
      if (!seq) continue;
      for (const l of sel.announce(m.flags)) ctx.out(l + "\r\n");
      ctx.out(
        `* ${seq} FETCH (UID ${m.uid} FLAGS (${
          sel.flagText(m.uid, m.flags)
        }) MODSEQ (${m.modSeq}))\r\n`,
      );
    }
    await ctx.breathe();
  }
}

/** Messages flagged \Deleted (STATUS DELETED, RFC 9051 §6.3.11), counted a window at a time. */
async function countDeleted(ctx: SessionContext, mailboxId: number): Promise<number> {
  let n = 0;
  let from = 0;
  while (true) {
    const r = await ctx.backend.mailboxes.scanMessages(mailboxId, {
      from,
      direction: "asc",
      window: COUNT_WINDOW,
      filter: { kind: "flag", flag: "\\Deleted", set: true },
      countOnly: true,
    });
    n += r.count;
    if (r.done) return n;
    from = r.next;
    await ctx.breathe();
  }
}

/**
 * RFC 3501 §6.3.8 wildcards: "*" matches anything, "%" anything but the delimiter; a pattern
 * that starts with INBOX matches regardless of case. Matched position by position (the set of
 * name positions each pattern prefix can reach), so time is at most pattern × name: a pattern
 * such as "*a*a*a…*b" made a regular expression backtrack for hours, stopping the event loop.
 */
function patternMatcher(pattern: string): (name: string) => boolean {
  const fold = pattern.toUpperCase().startsWith("INBOX");
  // Wildcards in a row match what the widest of them matches ("*%" as "*"); then the pattern
  // is at most twice as long as its literal characters, which a name must all have.
  const pat: string[] = [];
  let literals = 0;
  for (const ch of fold ? pattern.toUpperCase() : pattern) {
    const last = pat[pat.length - 1];
    if ((ch === "*" || ch === "%") && (last === "*" || last === "%")) {
      if (ch === "*") pat[pat.length - 1] = "*";
      continue;
    }
    if (ch !== "*" && ch !== "%") literals++;
    pat.push(ch);
  }
  return (name) => {
    const s = [...(fold ? name.toUpperCase() : name)];
    if (literals > s.length) return false;
    let reach = new Uint8Array(s.length + 1);
    reach[0] = 1;
    for (const ch of pat) {
      const next = new Uint8Array(s.length + 1);
      let any = false;
      if (ch === "*" || ch === "%") {
        // From any reached position on, as far as the name goes ("%": up to a delimiter).
        let on = false;
        for (let j = 0; j <= s.length; j++) {
          if (on && ch === "%" && s[j - 1] === DELIMITER) on = false;
          if (reach[j]) on = true;
          if (on) next[j] = 1, any = true;
        }
      } else {
        for (let j = 0; j < s.length; j++) {
          if (reach[j] && s[j] === ch) next[j + 1] = 1, any = true;
        }
      }
      if (!any) return false;
      reach = next;
    }
    return reach[s.length] === 1;
  };
}

async function statusItems(
  ctx: SessionContext,
  mb: MailboxRecord,
  items: StatusItem[],
): Promise<string> {
  const parts: string[] = [];
  let deleted: number | undefined;
  for (const item of items) {
    switch (item) {
      case "MESSAGES":
        parts.push(`MESSAGES ${mb.messages}`);
        break;
      case "RECENT":
        parts.push(`RECENT ${mb.recent}`);
        break;
      case "UIDNEXT":
        parts.push(`UIDNEXT ${mb.uidNext}`);
        break;
      case "UIDVALIDITY":
        parts.push(`UIDVALIDITY ${mb.uidValidity}`);
        break;
      case "UNSEEN":
        parts.push(`UNSEEN ${mb.unseen}`);
        break;
      case "HIGHESTMODSEQ":
        parts.push(`HIGHESTMODSEQ ${mb.highestModSeq}`);
        break;
      case "SIZE":
        parts.push(`SIZE ${mb.sizeBytes}`);
        break;
      case "DELETED":
        deleted ??= await countDeleted(ctx, mb.id);
        parts.push(`DELETED ${deleted}`);
        break;
    }
  }
  if (items.includes("HIGHESTMODSEQ")) ctx.enabled.add("CONDSTORE");
  return `* STATUS ${mailboxName(mb.name)} (${parts.join(" ")})\r\n`;
}

async function list(ctx: SessionContext, cmd: Of<"LIST" | "LSUB">) {
  const all = await ctx.backend.mailboxes.listMailboxes(ctx.user!.accountId);
  const lsub = cmd.name === "LSUB";
  const verb = lsub ? "LSUB" : "LIST";
  const KNOWN_SELECT = ["SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"];
  const KNOWN_RETURN = ["SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"];
  const unknown = [
    ...cmd.select.filter((o) => !KNOWN_SELECT.includes(o)),
    ...cmd.returnOptions.filter((o) => !KNOWN_RETURN.includes(o)),
  ];
  if (unknown.length) throw bad(`Unknown LIST option ${unknown[0]}`);
  // RFC 5258 §3: RECURSIVEMATCH needs a selection option other than itself and REMOTE.
  if (
    cmd.select.includes("RECURSIVEMATCH") &&
    !cmd.select.some((o) => o !== "RECURSIVEMATCH" && o !== "REMOTE")
  ) {
    throw bad("RECURSIVEMATCH needs another selection option");
  }
  if (cmd.patterns.length === 1 && cmd.patterns[0] === "" && !lsub) {
    ctx.out(`* LIST (\\Noselect) "${DELIMITER}" ""\r\n`);
    return;
  }
  const accountId = ctx.user!.accountId;
  const subscribed = new Set(await ctx.backend.mailboxes.listSubscriptions(accountId));
  const bySubscription = lsub || cmd.select.includes("SUBSCRIBED");
  const recursive = cmd.select.includes("RECURSIVEMATCH");
  const specialOnly = cmd.select.includes("SPECIAL-USE");
  const returnSubscribed = cmd.returnOptions.includes("SUBSCRIBED") ||
    cmd.select.includes("SUBSCRIBED");
  const returnChildren = cmd.returnOptions.includes("CHILDREN") || !cmd.returnOptions.length;
  const patterns = cmd.patterns.map((p) => patternMatcher(cmd.reference + p));
  const matches = (n: string) => patterns.some((match) => match(n));
  const mailboxes = new Map(all.map((m) => [m.name, m]));
  const existing = [...mailboxes.keys()];
  const parentsOf = (n: string) => {
    const parts = n.split(DELIMITER);
    return parts.slice(1).map((_, k) => parts.slice(0, k + 1).join(DELIMITER));
  };
  // The names in play: selected ones (subscriptions, or mailboxes), then every level above
  // them, so that "%" can show a parent whose children matched deeper (RFC 3501 §6.3.8/9).
  const base = bySubscription ? [...subscribed] : existing;
  const hasChild = (n: string, among: Iterable<string>) => {
    for (const c of among) if (c.startsWith(n + DELIMITER)) return true;
    return false;
  };
  const out = new Map<string, { attrs: string[]; extra: string }>();
  const sorted = (xs: Iterable<string>) =>
    [...new Set(xs)].sort((a, b) => (a === "INBOX" ? -1 : b === "INBOX" ? 1 : a < b ? -1 : 1));
  for (const name of sorted(base)) {
    await ctx.breathe();
    const mb = mailboxes.get(name);
    if (specialOnly && !mb?.specialUse) continue;
    if (matches(name)) {
      const attrs: string[] = [];
      if (!mb) attrs.push(lsub ? "\\Noselect" : "\\NonExistent");
      else if (returnChildren || lsub) {
        attrs.push(hasChild(name, existing) ? "\\HasChildren" : "\\HasNoChildren");
      }
      if (returnSubscribed && !lsub && subscribed.has(name)) attrs.push("\\Subscribed");
      if (mb?.specialUse) attrs.push(mb.specialUse);
      out.set(name, { attrs, extra: "" });
      continue;
    }
    // Not matched itself: its matching ancestors stand in for it.
    for (const p of parentsOf(name)) {
      if (!matches(p) || out.has(p) || base.includes(p)) continue;
      const mbp = mailboxes.get(p);
      if (bySubscription && recursive) {
        const attrs: string[] = [];
        if (!mbp) attrs.push("\\NonExistent");
        else if (returnChildren) attrs.push("\\HasChildren");
        out.set(p, { attrs, extra: ' ("CHILDINFO" ("SUBSCRIBED"))' });
      } else if (!bySubscription || lsub) {
        // In LSUB, \\Noselect says "not subscribed itself, but below it" (RFC 3501 §6.3.9).
        const attrs = [lsub ? "\\Noselect" : mbp ? "\\HasChildren" : "\\NonExistent"];
        if (!mbp && !lsub) attrs.push("\\HasChildren");
        out.set(p, { attrs, extra: "" });
      }
    }
  }
  for (const name of sorted(out.keys())) {
    const { attrs, extra } = out.get(name)!;
    ctx.out(`* ${verb} (${attrs.join(" ")}) "${DELIMITER}" ${mailboxName(name)}${extra}\r\n`);
    const mb = mailboxes.get(name);
    if (mb && cmd.returnStatus?.length) ctx.out(await statusItems(ctx, mb, cmd.returnStatus));
  }
}

export const mailboxCommands: CommandTable = {
  SELECT: { states: [...AUTHED], run: (ctx, cmd) => select(ctx, cmd as Of<"SELECT">) },
  EXAMINE: { states: [...AUTHED], run: (ctx, cmd) => select(ctx, cmd as Of<"EXAMINE">) },
  CLOSE: {
    states: ["selected"],
    async run(ctx) {
      await closeSelected(ctx, true);
    },
  },
  UNSELECT: {
    states: ["selected"],
    async run(ctx) {
      await closeSelected(ctx, false);
    },
  },
  CREATE: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"CREATE">;
      const name = checkName(c.mailbox);
      if (name.toUpperCase() === "INBOX") throw new ImapNo("INBOX exists", "ALREADYEXISTS");
      const use = c.specialUse?.[0];
      if (c.specialUse && (c.specialUse.length > 1 || !SPECIAL_USES.has(use!))) {
        throw new ImapNo("Unsupported special use", "USEATTR");
      }
      await ctx.backend.mailboxes.createMailbox(ctx.user!.accountId, name, use ?? null);
    },
  },
  DELETE: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"DELETE">;
      if (c.mailbox === "INBOX") throw new ImapNo("Cannot delete INBOX", "CANNOT");
      if (ctx.selected?.mailbox.name === c.mailbox) await closeSelected(ctx, false);
      await ctx.backend.mailboxes.deleteMailbox(ctx.user!.accountId, c.mailbox);
    },
  },
  RENAME: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"RENAME">;
      const to = checkName(c.to);
      if (to.toUpperCase() === "INBOX") throw new ImapNo("INBOX exists", "ALREADYEXISTS");
      await ctx.backend.mailboxes.renameMailbox(ctx.user!.accountId, c.from, to);
    },
  },
  SUBSCRIBE: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"SUBSCRIBE">;
      await ctx.backend.mailboxes.setSubscribed(ctx.user!.accountId, c.mailbox, true);
    },
  },
  UNSUBSCRIBE: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"UNSUBSCRIBE">;
      await ctx.backend.mailboxes.setSubscribed(ctx.user!.accountId, c.mailbox, false);
    },
  },
  LIST: { states: [...AUTHED], run: (ctx, cmd) => list(ctx, cmd as Of<"LIST">) },
  LSUB: { states: [...AUTHED], run: (ctx, cmd) => list(ctx, cmd as Of<"LSUB">) },
  STATUS: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"STATUS">;
      const mb = await ctx.backend.mailboxes.getMailbox(ctx.user!.accountId, c.mailbox);
      if (!mb) throw new ImapNo("No such mailbox", "NONEXISTENT");
      ctx.out(await statusItems(ctx, mb, c.items));
    },
  },
  APPEND: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"APPEND">;
      // Dovecot's answer (the reference's IMAP server): a message needs at least a byte.
      if (!c.upload && c.message.length === 0) throw new ImapNo("Can't save a zero byte message.");
      // The literal streamed into an upload as it arrived (the reader refused one over the
      // APPENDLIMIT before reading it); the session frees the upload after this command.
      if (!c.upload) throw new ImapNo("The message was not received", "SERVERBUG");
      let upload = c.upload;
      const accountId = ctx.user!.accountId;
      if (!(await ctx.backend.mailboxes.getMailbox(accountId, c.mailbox))) {
        throw new ImapNo("No such mailbox", "TRYCREATE");
      }
      if (upload instanceof BinaryToBase64) {
        await upload.end();
        if (upload.failed) {
          throw new ImapNo("A binary part's header is too long to convert", "UNKNOWN-CTE");
        }
        upload = upload.target;
      }
      const r = await ctx.backend.mailboxes.append({
        accountId,
        mailboxName: c.mailbox,
        upload,
        flags: c.flags.filter((f) => f.toLowerCase() !== "\\recent"),
        internalDate: c.date,
      });
      return `[APPENDUID ${r.uidValidity} ${r.uid}] APPEND completed`;
    },
  },
};
