import type { Socket } from 'node:net';

/**
 * Ends a forwarded connection (client side and upstream side) as a whole. Once either side has
 * closed, `pipe` has ended the other's writable side, but it also unpipes and pauses the
 * survivor's readable side, so the survivor never reads its peer's FIN, never emits 'end' and is
 * never destroyed: its descriptor would stay open (TCP state CLOSE) for the life of the process,
 * one per connection. So each side is closed when the other has closed, once what was forwarded
 * to it has been written ('finish'), and both when the pair sits idle for `idleMs`.
 */
export function closeTogether(client: Socket, upstream: Socket, idleMs: number): void {
  client.on('error', () => upstream.destroy());
  client.once('close', () => upstream.destroy());
  upstream.once('close', () => closeAfterFlush(client));
  client.setTimeout(idleMs, () => {
    client.destroy();
    upstream.destroy();
  });
}

/** Passes an upstream failure on: a reset as a reset (so the client sees ECONNRESET, as it would directly), anything else as a close. */
export function passFailureOn(client: Socket, err: NodeJS.ErrnoException): void {
  if (err.code !== 'ECONNRESET') {
    client.destroy();
    return;
  }
  try {
    client.resetAndDestroy();
  } catch {
    client.destroy();
  }
}

/** Ends `socket` (if not yet ended) and destroys it once its pending writes are flushed. */
function closeAfterFlush(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end();
}
