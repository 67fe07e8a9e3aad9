// The reference stack: Debian's Postfix and Dovecot set up the way a chatmail relay sets them up,
// on 127.0.0.1, in a state directory of their own. tests/postfix_interop_test.ts relays mail
// through it and the benchmark measures it beside tern (scripts/refstack/README.md).
//
// Nothing outside the state directory changes: Postfix runs as `postfix -c DIR/etc/postfix`,
// Dovecot as `dovecot -c DIR/etc/dovecot.conf`, both with their queue, sockets, logs and mail in
// DIR. Needs root (both master processes drop privileges themselves).

import * as net from "node:net";
import * as tls from "node:tls";
import { generateSelfSigned } from "../../src/net/mod.ts";
import { freePorts, retryOnAddrInUse } from "../../tests/support/ports.ts";
import { requireAll, requireRoot, requireTool } from "../../tests/support/tools.ts";

/** What starting the stack needs from the machine. */
export const refStackNeed = requireAll(
  requireRoot(),
  requireTool("postfix", "dovecot", "openssl"),
);

export interface RefStackOptions {
  /** Mail domain (default ref.test). */
  domain?: string;
  /** Other domains' routes, e.g. { "tern.test": "smtp:[127.0.0.1]:2525" } (Postfix transport). */
  transports?: Record<string, string>;
  /** Mailbox quota (default 500 MB, chatmail's). */
  quotaMb?: number;
  /** Largest message (default 31457280 bytes, chatmail's 30 MiB). */
  maxMessageBytes?: number;
  /** Dovecot's concurrent connections per user and address (its default, 10). */
  maxUserIpConnections?: number;
}

export interface RefStack {
  dir: string;
  domain: string;
  ports: {
    smtp: number;
    submission: number;
    submissions: number;
    imap: number;
    imaps: number;
  };
  /** The CA the listeners' certificate chains to. */
  caPem: string;
  /** Where Dovecot keeps an address's Maildir. */
  maildir(address: string): string;
  /** Creates or updates accounts (works while running). */
  addUsers(users: { address: string; password: string }[]): Promise<void>;
  postfixPid(): number | null;
  dovecotPid(): number | null;
  /** Postfix's and Dovecot's logs so far. */
  log(): { postfix: string; dovecot: string };
  /** Stops both and removes the state directory. */
  stop(): Promise<void>;
}

const dec = new TextDecoder();

async function run(cmd: string, args: string[], stdin?: string) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
}

function mainCf(dir: string, domain: string, o: Required<RefStackOptions>): string {
  return `# Postfix for the reference stack (written by scripts/refstack/refstack.ts).
# As a chatmail relay's main.cf (chatmail-relay.md §5.2), without filtermail,
# OpenDKIM and MTA-STS: mail is not checked for encryption and not signed.
compatibility_level = 3.6
queue_directory = ${dir}/postfix/queue
data_directory = ${dir}/postfix/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = ${dir}/log/postfix.log
maillog_file_prefixes = ${dir}/log

myhostname = ${domain}
mydomain = ${domain}
myorigin = ${domain}
mydestination = ${domain}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP refstack
biff = no
append_dot_mydomain = no
readme_directory = no

# Local mail goes to Dovecot over LMTP. No recipient check at RCPT, as on chatmail:
# unknown users are refused by LMTP and bounced, so addresses cannot be probed.
local_transport = lmtp:unix:private/dovecot-lmtp
local_recipient_maps =
alias_maps =
alias_database =
message_size_limit = ${o.maxMessageBytes}
mailbox_size_limit = 0

# Other domains: the given routes (texthash needs no postmap), else by DNS.
transport_maps = texthash:${dir}/etc/postfix/transport
smtp_tls_security_level = may

smtpd_tls_chain_files = ${dir}/tls/key.pem, ${dir}/tls/cert.pem
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2

# Passwords are checked by Dovecot (its auth socket is in the queue directory).
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no

smtpd_peername_lookup = no
disable_mime_input_processing = yes
smtpd_relay_restrictions = reject_unauth_destination

# Submission: the envelope sender must be the login, as on chatmail.
smtpd_sender_login_maps = regexp:${dir}/etc/postfix/login_map
mua_client_restrictions = permit_sasl_authenticated, reject
mua_sender_restrictions = reject_sender_login_mismatch, permit_sasl_authenticated, reject
mua_helo_restrictions = permit_mynetworks, reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, permit

maximal_queue_lifetime = 2d
bounce_queue_lifetime = 2d
`;
}

function masterCf(p: RefStack["ports"]): string {
  // Submission on both ports: TLS 1.3 and AUTH required, as on chatmail (§5.1).
  const submission = (name: string, wrapper: boolean) =>
    [
      `  -o syslog_name=postfix/${name}`,
      ...(wrapper ? ["  -o smtpd_tls_wrappermode=yes"] : []),
      "  -o smtpd_tls_security_level=encrypt",
      "  -o smtpd_tls_mandatory_protocols=>=TLSv1.3",
      "  -o smtpd_sasl_auth_enable=yes",
      "  -o smtpd_tls_auth_only=yes",
      "  -o smtpd_client_restrictions=$mua_client_restrictions",
      "  -o smtpd_helo_restrictions=$mua_helo_restrictions",
      "  -o smtpd_sender_restrictions=$mua_sender_restrictions",
      "  -o smtpd_recipient_restrictions=",
      "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
    ].join("\n");
  // Postfix's own services, none chrooted (nothing needs copying into the queue directory).
  const internal = [
    ["pickup", "unix", "n", "-", "n", "60", "1", "pickup"],
    ["cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"],
    ["qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"],
    ["tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"],
    ["rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"],
    ["bounce", "unix", "-", "-", "n", "-", "0", "bounce"],
    ["defer", "unix", "-", "-", "n", "-", "0", "bounce"],
    ["trace", "unix", "-", "-", "n", "-", "0", "bounce"],
    ["verify", "unix", "-", "-", "n", "-", "1", "verify"],
    ["flush", "unix", "n", "-", "n", "1000?", "0", "flush"],
    ["proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"],
    ["proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"],
    ["smtp", "unix", "-", "-", "n", "-", "-", "smtp"],
    ["relay", "unix", "-", "-", "n", "-", "-", "smtp"],
    ["showq", "unix", "n", "-", "n", "-", "-", "showq"],
    ["error", "unix", "-", "-", "n", "-", "-", "error"],
    ["retry", "unix", "-", "-", "n", "-", "-", "error"],
    ["discard", "unix", "-", "-", "n", "-", "-", "discard"],
    ["lmtp", "unix", "-", "-", "n", "-", "-", "lmtp"],
    ["anvil", "unix", "-", "-", "n", "-", "1", "anvil"],
    ["scache", "unix", "-", "-", "n", "-", "1", "scache"],
    ["postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"],
  ].map((f) => f.join(" ")).join("\n");
  return `# Postfix services for the reference stack (scripts/refstack/refstack.ts).
# service type private unpriv chroot wakeup maxproc command
127.0.0.1:${p.smtp} inet n - n - - smtpd
  -o syslog_name=postfix/smtp
127.0.0.1:${p.submission} inet n - n - 1000 smtpd
${submission("submission", false)}
127.0.0.1:${p.submissions} inet n - n - 1000 smtpd
${submission("submissions", true)}
${internal}
`;
}

function dovecotConf(
  dir: string,
  p: RefStack["ports"],
  o: Required<RefStackOptions>,
): string {
  const instance = `refstack-${dir.replace(/[^A-Za-z0-9]/g, "").slice(-12)}`;
  return `# Dovecot for the reference stack (written by scripts/refstack/refstack.ts), set up
# as a chatmail relay's (chatmail-relay.md §4) without its Python helpers: accounts
# from files (no creation on first login), METADATA kept by Dovecot in a file per
# user (no push), no last-login tracking.
instance_name = ${instance}
base_dir = ${dir}/run/dovecot
state_dir = ${dir}/state/dovecot
log_path = ${dir}/log/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1

ssl = required
ssl_cert = <${dir}/tls/cert.pem
ssl_key = <${dir}/tls/key.pem
ssl_min_protocol = TLSv1.3
ssl_prefer_server_ciphers = yes
disable_plaintext_auth = yes

auth_mechanisms = plain
auth_username_format = %Lu
# One passwd-file per account: Dovecot checks a shared file for changes at most once a
# second, which would hide an account added just after another login. Unknown names are
# not cached for the same reason.
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT ${dir}/users/%Lu
}
userdb {
  driver = passwd-file
  args = ${dir}/users/%Lu
  default_fields = uid=mail gid=mail home=${dir}/mail/%Lu
}
auth_cache_size = 10M
auth_cache_negative_ttl = 0

# Maildir, gzip-compressed, 500 MB quota (chatmail §4.1, §4.2).
first_valid_uid = 8
mail_uid = mail
mail_gid = mail
mail_home = ${dir}/mail/%Lu
mail_location = maildir:~
mail_cache_max_size = 500K
mail_plugins = zlib quota
mail_attribute_dict = file:%h/dovecot-attributes
namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Junk {
    special_use = \\Junk
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox "Sent Messages" {
    special_use = \\Sent
  }
}
plugin {
  zlib_save = gz
  quota = maildir:User quota
  quota_rule = *:storage=${o.quotaMb}M
  quota_max_mail_size = ${o.maxMessageBytes}
  quota_grace = 0
}

protocol imap {
  mail_plugins = $mail_plugins imap_quota
  imap_metadata = yes
}
# Delta Chat takes a server with these two for a chatmail relay.
imap_capability = +XDELTAPUSH XCHATMAIL
imap_hibernate_timeout = 30s
mail_max_userip_connections = ${o.maxUserIpConnections}

protocol lmtp {
  mail_fsync = never
}
lmtp_add_received_header = no

default_client_limit = 20000
default_vsz_limit = 1G
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${p.imap}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${p.imaps}
    ssl = yes
  }
  # one login process serves many clients, as on chatmail
  service_count = 0
  process_min_avail = 2
}
service imap {
  process_limit = 10000
}
service imap-hibernate {
  unix_listener imap-hibernate {
    mode = 0660
    group = mail
  }
}
# LMTP and SASL sockets where Postfix (user postfix) finds them: in its queue directory.
service lmtp {
  user = mail
  unix_listener ${dir}/postfix/queue/private/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
service auth {
  unix_listener ${dir}/postfix/queue/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
  unix_listener auth-userdb {
    mode = 0660
    user = mail
  }
}
# No growing delay after failed logins: the tests and the benchmark log in a lot.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
# Processes running as "mail" report statistics too.
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
`;
}

/** Runs a command that leaves a daemon behind, its output appended to `logFile`. */
async function daemon(logFile: string, ...cmd: string[]): Promise<number> {
  const out = await new Deno.Command("sh", {
    args: ["-c", 'log=$1; shift; exec "$@" >>"$log" 2>&1', "sh", logFile, ...cmd],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  return out.code;
}

function readPid(file: string): number | null {
  try {
    const pid = Number(Deno.readTextFileSync(file).trim());
    return pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number, ms: number): Promise<boolean> {
  for (const until = Date.now() + ms; Date.now() < until;) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !alive(pid);
}

/**
 * The first line a listener sends: over TLS from the start (`implicit`), else in the clear
 * (STARTTLS ports greet first). Verifies the certificate against `caPem`.
 */
function greeting(port: number, implicit: boolean, caPem: string, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: net.Socket = implicit
      ? tls.connect({ host: "127.0.0.1", port, ca: caPem, servername: name })
      : net.connect({ host: "127.0.0.1", port });
    let buf = "";
    const timer = setTimeout(() => s.destroy(new Error("no greeting within 5 s")), 5000);
    s.on("data", (d: Uint8Array) => {
      buf += dec.decode(d);
      if (buf.includes("\r\n")) {
        clearTimeout(timer);
        s.destroy();
        resolve(buf.slice(0, buf.indexOf("\r\n")));
      }
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(timer);
      reject(new Error(`closed after "${buf}"`));
    });
  });
}

async function startOnce(o: Required<RefStackOptions> & { domain: string }): Promise<RefStack> {
  const dir = await Deno.makeTempDir({ prefix: "tern-refstack-" });
  const [smtp, submission, submissions, imap, imaps] = await freePorts(5);
  const ports = { smtp, submission, submissions, imap, imaps };
  const pfConf = `${dir}/etc/postfix`;
  const dcConf = `${dir}/etc/dovecot.conf`;
  const postfixPid = () => readPid(`${dir}/postfix/queue/pid/master.pid`);
  const dovecotPid = () => readPid(`${dir}/run/dovecot/master.pid`);
  const readLog = (name: string) => {
    try {
      return Deno.readTextFileSync(`${dir}/log/${name}`);
    } catch {
      return "";
    }
  };
  let caPem = "";
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const pf = postfixPid(), dc = dovecotPid();
    if (pf) await daemon(`${dir}/log/start.txt`, "postfix", "-c", pfConf, "stop");
    if (dc) Deno.kill(dc, "SIGTERM");
    for (const pid of [pf, dc]) {
      if (pid && !(await gone(pid, 15_000))) {
        Deno.kill(pid, "SIGKILL");
        await gone(pid, 5000);
      }
    }
    await Deno.remove(dir, { recursive: true });
  };
  try {
    // Postfix and Dovecot drop privileges: their users must reach into the state directory.
    await Deno.chmod(dir, 0o755);
    for (const d of ["etc/postfix", "tls", "log", "run/dovecot", "state/dovecot", "users"]) {
      await Deno.mkdir(`${dir}/${d}`, { recursive: true });
    }
    // The queue directory belongs to root; "postfix start" creates what is inside it.
    await Deno.mkdir(`${dir}/postfix/queue`, { recursive: true });
    await Deno.mkdir(`${dir}/postfix/data`, { recursive: true });
    await Deno.mkdir(`${dir}/mail`, { recursive: true });
    const ids = async (user: string) => {
      const r = await run("id", ["-u", user]);
      const g = await run("id", ["-g", user]);
      return [Number(r.out), Number(g.out)] as const;
    };
    const [postfixUid, postfixGid] = await ids("postfix");
    const [mailUid, mailGid] = await ids("mail");
    const dovecotGid = Number((await run("getent", ["group", "dovecot"])).out.split(":")[2]);
    await Deno.chown(`${dir}/postfix/data`, postfixUid, postfixGid);
    await Deno.chown(`${dir}/mail`, mailUid, mailGid);
    await Deno.chmod(`${dir}/mail`, 0o770);
    await Deno.chown(`${dir}/users`, 0, dovecotGid);
    await Deno.chmod(`${dir}/users`, 0o750);

    // A CA and a leaf for the domain and 127.0.0.1 (rustls refuses a self-signed leaf).
    const cert = await generateSelfSigned([o.domain, `*.${o.domain}`, "127.0.0.1"]);
    await Deno.writeTextFile(`${dir}/tls/cert.pem`, cert.certPem);
    await Deno.writeTextFile(`${dir}/tls/key.pem`, cert.keyPem, { mode: 0o600 });
    caPem = cert.caPem!;

    await Deno.writeTextFile(`${pfConf}/main.cf`, mainCf(dir, o.domain, o));
    await Deno.writeTextFile(`${pfConf}/master.cf`, masterCf(ports));
    await Deno.writeTextFile(`${pfConf}/login_map`, "/^(.*)$/ ${1}\n");
    await Deno.writeTextFile(
      `${pfConf}/transport`,
      Object.entries(o.transports).map(([d, t]) => `${d} ${t}\n`).join(""),
    );
    await Deno.writeTextFile(dcConf, dovecotConf(dir, ports, o));
    for (const f of ["postfix.log", "dovecot.log"]) await Deno.writeTextFile(`${dir}/log/${f}`, "");

    // The daemons keep whatever output they were given: a file, never a pipe to wait on.
    if ((await daemon(`${dir}/log/start.txt`, "postfix", "-c", pfConf, "start")) !== 0) {
      throw new Error(`postfix did not start: ${readLog("start.txt")}\n${readLog("postfix.log")}`);
    }
    if ((await daemon(`${dir}/log/start.txt`, "dovecot", "-c", dcConf)) !== 0) {
      throw new Error(`dovecot did not start: ${readLog("start.txt")}\n${readLog("dovecot.log")}`);
    }
    // Up when every listener greets (over TLS where it starts with TLS).
    const listeners: [number, boolean, RegExp][] = [
      [smtp, false, /^220 /],
      [submission, false, /^220 /],
      [submissions, true, /^220 /],
      [imap, false, /^\* OK /],
      [imaps, true, /^\* OK /],
    ];
    const deadline = Date.now() + 30_000;
    for (const [port, implicit, want] of listeners) {
      for (;;) {
        const line = await greeting(port, implicit, caPem, o.domain).catch((e) => String(e));
        if (want.test(line)) break;
        const logs = readLog("postfix.log") + readLog("dovecot.log");
        // A port taken by someone else in the meantime: the caller starts again on others.
        if (/address already in use/i.test(logs) || Date.now() > deadline) {
          throw new Error(`port ${port}: ${line}\n${logs.slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dir,
    domain: o.domain,
    ports,
    caPem,
    maildir: (address) => `${dir}/mail/${address.toLowerCase()}`,
    async addUsers(users) {
      if (users.length === 0) return;
      for (const u of users) {
        if (!/^[a-z0-9_-][a-z0-9._-]*@[a-z0-9.-]+$/.test(u.address.toLowerCase())) {
          throw new Error(`refstack: unusable address "${u.address}"`);
        }
        if (/[:\r\n]/.test(u.password)) throw new Error("refstack: ':' or a newline in a password");
      }
      // One openssl run hashes every password ({SHA512-CRYPT}, as chatmail stores them).
      const r = await run(
        "openssl",
        ["passwd", "-6", "-stdin"],
        users.map((u) => u.password + "\n").join(""),
      );
      const hashes = r.out.trim().split("\n");
      if (r.code !== 0 || hashes.length !== users.length) {
        throw new Error(`refstack: hashing passwords failed: ${r.err}`);
      }
      const dovecot = Number((await run("getent", ["group", "dovecot"])).out.split(":")[2]);
      for (const [i, u] of users.entries()) {
        const address = u.address.toLowerCase();
        const tmp = `${dir}/users/.${address}.tmp`;
        await Deno.writeTextFile(tmp, `${address}:{SHA512-CRYPT}${hashes[i]}::::::\n`, {
          mode: 0o640,
        });
        await Deno.chown(tmp, 0, dovecot);
        // Renamed into place: Dovecot never reads a half-written file.
        await Deno.rename(tmp, `${dir}/users/${address}`);
      }
    },
    postfixPid,
    dovecotPid,
    log: () => ({ postfix: readLog("postfix.log"), dovecot: readLog("dovecot.log") }),
    stop,
  };
}

/** Starts the stack on free loopback ports (again on others if one was taken meanwhile). */
export function startRefStack(options: RefStackOptions = {}): Promise<RefStack> {
  const o = {
    domain: options.domain ?? "ref.test",
    transports: options.transports ?? {},
    quotaMb: options.quotaMb ?? 500,
    maxMessageBytes: options.maxMessageBytes ?? 31_457_280,
    maxUserIpConnections: options.maxUserIpConnections ?? 10,
  };
  return retryOnAddrInUse(() => startOnce(o));
}

// `deno run -A scripts/refstack/refstack.ts [USER PASS]…`: runs the stack until Ctrl-C, for trying
// a client against it by hand.
if (import.meta.main) {
  const rs = await startRefStack();
  const args = [...Deno.args];
  const users: { address: string; password: string }[] = [];
  while (args.length >= 2) {
    const [user, password] = args.splice(0, 2);
    users.push({ address: user.includes("@") ? user : `${user}@${rs.domain}`, password });
  }
  await rs.addUsers(users);
  console.log(JSON.stringify({ dir: rs.dir, domain: rs.domain, ports: rs.ports }, null, 2));
  await Deno.writeTextFile(`${rs.dir}/ca.pem`, rs.caPem);
  console.log(`CA: ${rs.dir}/ca.pem; Ctrl-C stops and removes it`);
  await new Promise<void>((resolve) => {
    Deno.addSignalListener("SIGINT", () => resolve());
    Deno.addSignalListener("SIGTERM", () => resolve());
  });
  await rs.stop();
  Deno.exit(0);
}
