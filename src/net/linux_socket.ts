// Two things Deno's TLS sockets cannot do, done on the descriptor itself (found through /proc by
// port and socket inode, changed with libc over FFI). Where any of that is unavailable the
// listener falls back to node:tls, which can do both.
//
// - TCP_NODELAY: Deno.TlsConn has no setNoDelay, and with Nagle's algorithm on a reply written in
//   two pieces waits for the client's delayed ACK: 44 ms per IMAP command here. Linux copies the
//   option from a listening socket to the sockets it accepts, so it is set once on the listener.
// - Dropping a client that never completes its handshake: closing such a Deno.TlsConn waits for
//   the handshake to finish first (still open 60 s later here), so a silent client would keep its
//   socket after we gave up on it. shutdown(2) ends the handshake with an EOF and Deno then
//   closes the socket itself.

const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SHUT_RDWR = 2;
const LISTEN = "0A";

const SYMBOLS = {
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
} as const;

/** Runs fn with libc opened for the call (it is loaded anyway; an open handle would leak). */
function withLibc<T>(fn: (lib: Deno.DynamicLibrary<typeof SYMBOLS>) => T): T | null {
  let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
    return fn(lib);
  } catch {
    return null;
  } finally {
    lib?.close();
  }
}

interface TcpRow {
  localPort: number;
  remoteIp: string;
  remotePort: number;
  state: string;
  inode: string;
}

/** "0100007F:1F90" (IPv4) or 32 hex digits (IPv6, IPv4-mapped included) → ip and port. */
function parseEndpoint(hex: string): { ip: string; port: number } {
  const [a, p] = hex.split(":");
  const port = parseInt(p, 16);
  const v4 = (h: string) => [6, 4, 2, 0].map((i) => parseInt(h.slice(i, i + 2), 16)).join(".");
  if (a.length === 8) return { ip: v4(a), port };
  // IPv4-mapped IPv6: ::ffff:a.b.c.d is stored as words 0, 0, 0xffff0000, a.b.c.d (host order)
  if (a.slice(0, 16) === "0".repeat(16) && a.slice(16, 24) === "FFFF0000") {
    return { ip: v4(a.slice(24)), port };
  }
  return { ip: a.toLowerCase(), port };
}

function tcpRows(): TcpRow[] {
  const rows: TcpRow[] = [];
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = parseEndpoint(f[1]), remote = parseEndpoint(f[2]);
      rows.push({
        localPort: local.port,
        remoteIp: remote.ip,
        remotePort: remote.port,
        state: f[3],
        inode: f[9],
      });
    }
  }
  return rows;
}

function descriptorsOf(inodes: Set<string>): number[] {
  const fds: number[] = [];
  if (inodes.size === 0) return fds;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/self/fd/${entry.name}`));
      if (m && inodes.has(m[1])) fds.push(Number(entry.name));
    } catch {
      // closed meanwhile, or the listing's own descriptor
    }
  }
  return fds;
}

/** Sets TCP_NODELAY on this process's listening socket(s) for `port`; false when it cannot. */
export function setListenerNoDelay(port: number): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    const inodes = new Set(
      tcpRows().filter((r) => r.state === LISTEN && r.localPort === port).map((r) => r.inode),
    );
    const fds = descriptorsOf(inodes);
    if (fds.length === 0) return false;
    const one = new Uint8Array(new Int32Array([1]).buffer);
    return withLibc((lib) =>
      fds.every((fd) => lib.symbols.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4) === 0)
    ) ?? false;
  } catch {
    return false;
  }
}

/**
 * Shuts down (both directions) this process's connected socket with these endpoints, which makes
 * a pending TLS handshake fail at once. False when it is not found (already closed) or cannot be.
 */
export function shutdownConnection(localPort: number, remoteIp: string, remotePort: number) {
  if (Deno.build.os !== "linux") return false;
  try {
    const ip = remoteIp.replace(/^::ffff:/, "").toLowerCase();
    const inodes = new Set(
      tcpRows().filter((r) =>
        r.state !== LISTEN && r.localPort === localPort && r.remotePort === remotePort &&
        (r.remoteIp === ip || r.remoteIp.length === 32)
      ).map((r) => r.inode),
    );
    const fds = descriptorsOf(inodes);
    if (fds.length === 0) return false;
    return withLibc((lib) => fds.every((fd) => lib.symbols.shutdown(fd, SHUT_RDWR) === 0)) ??
      false;
  } catch {
    return false;
  }
}
