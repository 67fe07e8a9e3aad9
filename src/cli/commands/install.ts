// tern install / tern uninstall: config file, data directory, a `tern` system user and a
// hardened systemd unit that may bind ports below 1024. --root DIR installs into a staging tree
// (packaging, tests); the system user is then left alone.

import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { loadConfig } from "../../config/mod.ts";
import { parse, UsageError } from "../context.ts";
import type { CliIo } from "../context.ts";
import * as dns from "./dns.ts";
import { RUNTIME_ENV } from "../runtime_env.ts";

export const usage = `tern install --domain D [--ip IP] [--acme-email E] [--root DIR] [--no-user]
tern uninstall [--purge] [--root DIR]`;

const CONFIG = "/etc/tern/tern.toml";
const UNIT = "/etc/systemd/system/tern.service";
const DATA = "/var/lib/tern";
const CACHE = "/var/cache/tern";

/** How systemd should start this program: the binary itself, or deno running main.ts. */
function execStart(): string {
  const exe = Deno.execPath();
  if (basename(exe) !== "deno") return exe;
  const main = new URL("../../../main.ts", import.meta.url).pathname;
  return `${exe} run -A --frozen --config ${join(dirname(main), "deno.json")} ${main}`;
}

export function unitFile(exec: string): string {
  return `[Unit]
Description=tern chatmail relay
Documentation=https://github.com/ (see README)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=tern
Group=tern
ExecStart=${exec} serve --config ${CONFIG}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
TimeoutStopSec=30s
LimitNOFILE=65536
# Fewer malloc arenas and a small V8 young generation: less memory with many connections
# (src/cli/runtime_env.ts says how much).
${Object.entries(RUNTIME_ENV).map(([k, v]) => `Environment=${k}=${v}`).join("\n")}
# The compiled binary keeps V8's code cache in $TMPDIR/deno-compile-<name>.cache; PrivateTmp's /tmp
# goes with every stop, and a start without that cache compiles everything again (slower, and more
# memory until startup hands it back: src/cli/runtime_env.ts). systemd makes ${CACHE} for the
# service, writable despite ProtectSystem=strict.
CacheDirectory=tern
Environment=TMPDIR=${CACHE}
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictNamespaces=yes
ReadWritePaths=${DATA}
ReadOnlyPaths=/etc/tern

[Install]
WantedBy=multi-user.target
`;
}

function configText(domain: string, acmeEmail: string | undefined): string {
  return [
    "# tern configuration; every key is documented in the README.",
    `domain = "${domain}"`,
    `data_dir = "${DATA}"`,
    'log = "off"',
    ...(acmeEmail ? [`acme_email = "${acmeEmail}"`] : []),
    "",
  ].join("\n");
}

async function run_(cmd: string, args: string[]): Promise<{ code: number; err: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
    return { code: out.code, err: new TextDecoder().decode(out.stderr).trim() };
  } catch (e) {
    return { code: 127, err: (e as Error).message };
  }
}

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {
    ip: { type: "string" },
    "acme-email": { type: "string" },
    root: { type: "string" },
    "no-user": { type: "boolean" },
    purge: { type: "boolean" },
  });
  const [sub] = positionals;
  const root = (values.root as string | undefined) ?? "/";
  const at = (p: string) => join(root, p);
  if (sub === "uninstall") {
    for (const p of [UNIT, CONFIG]) rmSync(at(p), { force: true });
    // Only a cache (the unit's CacheDirectory): nothing in it is the operator's.
    rmSync(at(CACHE), { recursive: true, force: true });
    if (values.purge) rmSync(at(DATA), { recursive: true, force: true });
    io.out(
      `Removed ${UNIT} and ${CONFIG}${values.purge ? ` and ${DATA}` : `; data kept in ${DATA}`}.`,
    );
    if (root === "/") io.out("Run: systemctl daemon-reload");
    return 0;
  }
  if (sub !== "install") throw new UsageError("expected install or uninstall");
  const domain = (values.domain as string | undefined) ?? (values.ip as string | undefined);
  if (!domain) throw new UsageError("install: --domain (or --ip for an IP relay) is required");
  // Validate before writing anything: the same loader the service will use.
  loadConfig({ fileText: configText(domain, values["acme-email"] as string | undefined) });
  if (existsSync(at(CONFIG))) {
    io.err(`install: ${at(CONFIG)} exists; edit it, or run tern uninstall first`);
    return 1;
  }
  const systemUser = root === "/" && !values["no-user"];
  if (systemUser) {
    const exists = (await run_("id", ["-u", "tern"])).code === 0;
    if (!exists) {
      const r = await run_("useradd", [
        "--system",
        "--home-dir",
        DATA,
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "tern",
      ]);
      if (r.code !== 0) {
        io.err(`install: cannot create the system user tern: ${r.err}`);
        return 1;
      }
    }
  }
  mkdirSync(dirname(at(CONFIG)), { recursive: true });
  writeFileSync(at(CONFIG), configText(domain, values["acme-email"] as string | undefined), {
    mode: 0o644,
  });
  mkdirSync(at(DATA), { recursive: true, mode: 0o750 });
  let owner: { uid: number; gid: number } | null = null;
  if (systemUser) {
    const entry = readFileSync("/etc/passwd", "utf8").split("\n").find((l) =>
      l.startsWith("tern:")
    );
    const [, , uid, gid] = entry?.split(":") ?? [];
    if (uid && gid) owner = { uid: Number(uid), gid: Number(gid) };
  }
  mkdirSync(dirname(at(UNIT)), { recursive: true });
  writeFileSync(at(UNIT), unitFile(execStart()), { mode: 0o644 });
  io.out(`Wrote ${at(CONFIG)}, ${at(UNIT)} and ${at(DATA)}.`);
  io.out("");
  if (!domain.match(/^\d+\.\d+\.\d+\.\d+$/)) {
    io.out("Publish these DNS records:");
    await dns.run([
      "--config",
      at(CONFIG),
      "--data-dir",
      at(DATA),
      ...(values.ip ? ["--ip", values.ip as string] : []),
    ], io);
    io.out("");
  }
  // Everything in the data directory (the DKIM key just generated too) belongs to the service.
  if (owner) {
    chownSync(at(DATA), owner.uid, owner.gid);
    const key = join(at(DATA), "dkim.key");
    if (existsSync(key)) chownSync(key, owner.uid, owner.gid);
  }
  io.out("Then start it:");
  io.out("  systemctl daemon-reload && systemctl enable --now tern");
  io.out("  tern doctor --config /etc/tern/tern.toml");
  return 0;
}
