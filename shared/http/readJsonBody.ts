import type { HttpRequest } from '@azure/functions';
import { InvalidRequestError } from '../errors';

/**
 * Reads a JSON request body of at most `maxBytes` bytes, counting the bytes as they arrive, so a
 * body past the limit is never read (or held) beyond it, however it is sent (with a
 * `Content-Length`, chunked, or with a `Content-Length` that understates it).
 *
 * A `Content-Length` over the limit fails at once, without reading. Otherwise `request.body` is read
 * chunk by chunk; as soon as the count passes `maxBytes` the stream is cancelled, so its source
 * stops reading, and `tooLarge()` is thrown. The bytes are decoded as UTF-8 once, at the end.
 *
 * @param tooLarge builds the error for a body past the limit (the route decides its status and code).
 * @throws the error `tooLarge()` returns, for a body past `maxBytes`.
 * @throws InvalidRequestError (400) when the body cannot be read, is not UTF-8, or is not JSON.
 */
export async function readJsonBody(request: HttpRequest, maxBytes: number, tooLarge: () => Error): Promise<unknown> {
  const declared = request.headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared.trim()) > maxBytes) {
    await request.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const bytes = await readBounded(request.body, maxBytes, tooLarge);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidRequestError('The body is not valid UTF-8');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new InvalidRequestError('The body is not valid JSON');
  }
}

/** The stream's bytes, or `tooLarge()` once more than `maxBytes` arrived (the stream is cancelled). */
async function readBounded(body: ReadableStream<Uint8Array> | null, maxBytes: number, tooLarge: () => Error): Promise<Uint8Array> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let next: Awaited<ReturnType<typeof reader.read>>;
    try {
      next = await reader.read();
    } catch {
      // A client that aborts mid-body, or a malformed chunked encoding: the request is incomplete.
      throw new InvalidRequestError('The body could not be read to its end');
    }
    if (next.done) break;
    size += next.value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(next.value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
