// TCP_NODELAY for Deno TLS listeners. Deno.TlsConn has no setNoDelay, and with Nagle's algorithm
// on, a reply written in two pieces waits for the client's delayed ACK: 44 ms per IMAP command
// here. Linux copies the option from a listening socket to the sockets it accepts, so setting it
// once on the listener is enough. The listener's descriptor is found through /proc (its port and
// socket inode) and the option set with libc's setsockopt over FFI. Where any of that is not
// available the caller falls back to node:tls, which sets the option per socket.

const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const LISTEN_STATE = "0A";

/** Socket inodes of this process's TCP sockets listening on `port`. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== LISTEN_STATE) continue;
      if (parseInt(f[1].split(":")[1], 16) === port) inodes.add(f[9]);
    }
  }
  return inodes;
}

function descriptorsOf(inodes: Set<string>): number[] {
  const fds: number[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/self/fd/${entry.name}`));
      if (m && inodes.has(m[1])) fds.push(Number(entry.name));
    } catch {
      // closed meanwhile
    }
  }
  return fds;
}

/** Sets TCP_NODELAY on this process's listening socket(s) for `port`; false when it cannot. */
export function setListenerNoDelay(port: number): boolean {
  if (Deno.build.os !== "linux") return false;
  let lib;
  try {
    const fds = descriptorsOf(listeningInodes(port));
    if (fds.length === 0) return false;
    // Opened per call (libc is loaded anyway): a library kept open would outlive its listener.
    lib = Deno.dlopen("libc.so.6", {
      setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
    });
    const one = new Uint8Array(new Int32Array([1]).buffer);
    const set = lib.symbols.setsockopt;
    return fds.every((fd) => set(fd, IPPROTO_TCP, TCP_NODELAY, one, 4) === 0);
  } catch {
    return false;
  } finally {
    lib?.close();
  }
}
