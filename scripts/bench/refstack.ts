// The reference stack (Postfix + Dovecot, /work/shared/refstack) on free loopback ports in a
// temporary state directory of its own, so that it never collides with another running copy.

import { freePorts, now, run, treeMem } from "./util.ts";
import type { Mem } from "./util.ts";

export const REFSTACK_HOME = "/work/shared/refstack";

export interface RefStack {
  dir: string;
  domain: string;
  submissionsPort: number;
  imapsPort: number;
  caPem: string;
  /** ms that start.sh took until every listener answered a TLS session. */
  startMs: number;
  env: Record<string, string>;
  dovecotPid(): number | null;
  postfixPid(): number | null;
  /** Dovecot's master and all its children (login, imap, lmtp, auth, …). */
  dovecotMem(): Mem;
  /** Postfix and Dovecot together. */
  totalMem(): Mem;
  addUsers(users: { user: string; pass: string }[]): Promise<void>;
  /** Distinct warning and error lines Dovecot logged so far (without timestamps). */
  dovecotWarnings(): string[];
  stop(): Promise<void>;
}

function readPid(file: string): number | null {
  try {
    const pid = Number(Deno.readTextFileSync(file).replace(/\D/g, ""));
    return pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * A CA and a leaf certificate for 127.0.0.1 signed by it. start.sh would make a self-signed
 * certificate with CA:TRUE, which rustls (Deno's TLS) refuses as a server certificate; start.sh
 * keeps a certificate that is already in place.
 */
async function makeCertificates(tlsDir: string, domain: string): Promise<string> {
  await Deno.mkdir(tlsDir, { recursive: true });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const steps: string[][] = [
    [
      "req",
      "-x509",
      ...ec,
      "-days",
      "30",
      "-subj",
      "/CN=tern bench refstack CA",
      "-keyout",
      `${tlsDir}/bench-ca.key`,
      "-out",
      `${tlsDir}/bench-ca.pem`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    [
      "req",
      ...ec,
      "-subj",
      `/CN=${domain}`,
      "-keyout",
      `${tlsDir}/key.pem`,
      "-out",
      `${tlsDir}/leaf.csr`,
    ],
    [
      "x509",
      "-req",
      "-in",
      `${tlsDir}/leaf.csr`,
      "-CA",
      `${tlsDir}/bench-ca.pem`,
      "-CAkey",
      `${tlsDir}/bench-ca.key`,
      "-CAcreateserial",
      "-days",
      "30",
      "-out",
      `${tlsDir}/leaf.pem`,
      "-extfile",
      `${tlsDir}/leaf.ext`,
    ],
  ];
  await Deno.writeTextFile(
    `${tlsDir}/leaf.ext`,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=DNS:${domain},DNS:*.${domain},IP:127.0.0.1`,
    ].join("\n") + "\n",
  );
  for (const args of steps) {
    const r = await run("openssl", args);
    if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  }
  const ca = await Deno.readTextFile(`${tlsDir}/bench-ca.pem`);
  const leaf = await Deno.readTextFile(`${tlsDir}/leaf.pem`);
  await Deno.writeTextFile(`${tlsDir}/cert.pem`, leaf + ca);
  for (const f of ["bench-ca.key", "leaf.csr", "leaf.ext", "leaf.pem", "bench-ca.srl"]) {
    await Deno.remove(`${tlsDir}/${f}`).catch(() => {});
  }
  return ca;
}

export interface RefStackOptions {
  /** Mail domain (default ref.test). */
  domain?: string;
  /** Postfix transport routes, "domain=transport" (e.g. another stack's SMTP port). */
  transports?: string[];
}

export async function startRefStack(options: RefStackOptions = {}): Promise<
  RefStack & {
    smtpPort: number;
  }
> {
  if (Deno.uid() !== 0) throw new Error("the reference stack needs root");
  const domain = options.domain ?? "ref.test";
  const dir = await Deno.makeTempDir({ prefix: "tern-bench-refstack-" });
  const [smtp, submission, submissions, imap, imaps] = freePorts(5);
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    REFSTACK_DOMAIN: domain,
    REFSTACK_TRANSPORTS: (options.transports ?? []).join(" "),
    REFSTACK_DIR: dir,
    REFSTACK_SMTP_PORT: String(smtp),
    REFSTACK_SUBMISSION_PORT: String(submission),
    REFSTACK_SUBMISSIONS_PORT: String(submissions),
    REFSTACK_IMAP_PORT: String(imap),
    REFSTACK_IMAPS_PORT: String(imaps),
  };
  const stop = async () => {
    await run("bash", [`${REFSTACK_HOME}/stop.sh`, "--purge"], { env });
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  let caPem: string;
  let startMs: number;
  try {
    await Deno.writeTextFile(`${dir}/.refstack`, "");
    caPem = await makeCertificates(`${dir}/tls`, domain);
    const t0 = now();
    const r = await run("bash", [`${REFSTACK_HOME}/start.sh`], { env });
    startMs = now() - t0;
    if (r.code !== 0) throw new Error(`start.sh failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const dcPidFile = `${dir}/run/dovecot/master.pid`;
  const pfPidFile = `${dir}/postfix/spool/pid/master.pid`;
  const dovecotPid = () => readPid(dcPidFile);
  const postfixPid = () => readPid(pfPidFile);
  return {
    dir,
    domain,
    smtpPort: smtp,
    submissionsPort: submissions,
    imapsPort: imaps,
    caPem,
    startMs,
    env,
    dovecotPid,
    postfixPid,
    dovecotMem: () => treeMem([dovecotPid() ?? -1]),
    totalMem: () => treeMem([dovecotPid() ?? -1, postfixPid() ?? -1]),
    async addUsers(users) {
      if (users.length === 0) return;
      const r = await run("bash", [`${REFSTACK_HOME}/adduser.sh`, "--stdin"], {
        env,
        stdin: users.map((u) => `${u.user} ${u.pass}\n`).join(""),
      });
      if (r.code !== 0) throw new Error(`adduser.sh failed: ${r.stderr}`);
    },
    dovecotWarnings() {
      let text = "";
      try {
        text = Deno.readTextFileSync(`${dir}/log/dovecot.log`);
      } catch {
        return [];
      }
      const seen = new Map<string, number>();
      for (const line of text.split("\n")) {
        if (!/(Warning|Error|Fatal|Panic):/.test(line)) continue;
        // drop the timestamp and anything that names one process, user or session
        const key = line.replace(/^\S+ \S+ /, "").replace(
          /\b(user|UID|pid|session)[ =]\S+/g,
          "$1 …",
        )
          .replace(/<[^>]*>/g, "<…>").replace(/\(\d+\)/g, "(…)").replace(/\d+/g, "N");
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      return [...seen].map(([k, n]) => `${n}× ${k}`);
    },
    stop,
  };
}
