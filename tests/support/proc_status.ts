// What /proc says about a process: alive, resident memory, open descriptors (Linux only).

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return !/^State:\s+Z/m.test(status);
  } catch {
    return false;
  }
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** Number of open file descriptors (sockets, files, pipes). */
export function fdCount(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

export interface TcpSocket {
  local: string;
  remote: string;
  /** The kernel's state name (ESTABLISHED, CLOSE_WAIT, LISTEN…). */
  state: string;
  /** Bytes queued in the kernel towards the peer, not yet acknowledged (Send-Q). */
  sendQueue: number;
}

const TCP_STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
};

function endpoint(hex: string): string {
  const [a, p] = hex.split(":");
  const v4 = (h: string) => [6, 4, 2, 0].map((i) => parseInt(h.slice(i, i + 2), 16)).join(".");
  const ip = a.length === 8
    ? v4(a)
    : a.slice(0, 24) === "0000000000000000FFFF0000"
    ? v4(a.slice(24))
    : a.toLowerCase();
  return `${ip}:${parseInt(p, 16)}`;
}

/** Open TCP sockets of the process (its socket inodes looked up in /proc/net/tcp*). */
export function tcpSockets(pid: number): TcpSocket[] {
  const inodes = new Set<string>();
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed between the listing and the read
    }
  }
  const out: TcpSocket[] = [];
  for (const table of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && inodes.has(cols[9])) {
        out.push({
          local: endpoint(cols[1]),
          remote: endpoint(cols[2]),
          state: TCP_STATES[cols[3]] ?? cols[3],
          sendQueue: parseInt(cols[4].split(":")[0], 16),
        });
      }
    }
  }
  return out;
}

export function tcpSocketCount(pid: number): number {
  return tcpSockets(pid).length;
}

export const mib = (bytes: number) => Math.round(bytes / 1048576 * 10) / 10;
