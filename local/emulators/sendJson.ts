import type { ServerResponse } from 'node:http';

/**
 * Answers with a JSON body and its length, plus `headers` (an emulator's own service headers).
 * Does nothing once the answer has started or the socket is gone (a hung or reset request).
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(payload)),
  });
  res.end(payload);
}
