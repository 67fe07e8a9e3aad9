// Stops or restarts the reads of a TCP socket's handle itself. Deno 2.9: pausing a TLSSocket
// only stops its 'data' events; TLS goes on reading the TCP socket beneath and buffers all a
// client sends (50 MB sent to a paused socket: +100 MB RSS). Stopping the TCP handle's reads is
// what holds the sender back. Plain TCP sockets stop with pause() and need none of this.

import type { Socket } from "node:net";

type TcpHandle = { readStop(): void; readStart(): void };

/** `reading` false: the handle reads nothing more until it is set true again. */
export function setTcpReading(socket: Socket, reading: boolean): void {
  const handle = (socket as unknown as { _handle?: TcpHandle })._handle;
  if (reading) handle?.readStart();
  else handle?.readStop();
}
