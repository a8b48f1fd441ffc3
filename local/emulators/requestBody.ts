import type { IncomingMessage } from 'node:http';

/**
 * Reads a request's whole body, or answers undefined when it is larger than `limit` bytes. An
 * oversized body is still read to its end (and dropped), so the emulator can answer it with its
 * service's own 413 on a connection the client is still listening on.
 */
export function readBody(req: IncomingMessage, limit = Number.POSITIVE_INFINITY): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => resolve(size > limit ? undefined : Buffer.concat(chunks)));
  });
}
