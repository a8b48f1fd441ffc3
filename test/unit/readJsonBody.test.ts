import { HttpRequest } from '@azure/functions';
import type { HttpRequestInit } from '@azure/functions';
import { InvalidRequestError, TooManySecretsError } from '../../shared/errors';
import { readJsonBody } from '../../shared/http/readJsonBody';

/** A body source that records how far it was read and whether it was cancelled. */
function source(chunks: Uint8Array[]): { stream: ReadableStream<Uint8Array>; pulled: () => number; cancelled: () => boolean } {
  let next = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const chunk = chunks[next++];
        if (chunk === undefined) controller.close();
        else controller.enqueue(chunk);
      },
      cancel() {
        cancelled = true;
      },
    },
    // Pulled only when read, so `pulled` counts what the reader asked for.
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => next, cancelled: () => cancelled };
}

/** A real HttpRequest whose body streams, as the library builds it with HTTP streaming. */
function streamingRequest(body: ReadableStream<Uint8Array>, headers: Record<string, string> = {}): HttpRequest {
  const url = 'https://broker.example/api/secrets/resolve';
  const nativeRequest = new Request(url, { method: 'POST', headers, body, duplex: 'half' });
  return new HttpRequest({ nativeRequest, params: {} } as HttpRequestInit);
}

/** `text` cut into `size`-byte chunks. */
function chunked(text: string, size: number): Uint8Array[] {
  const bytes = new TextEncoder().encode(text);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return chunks;
}

/** A JSON document of exactly `bytes` bytes. */
function jsonOf(bytes: number): string {
  const text = `{"secrets":["${'a'.repeat(bytes - '{"secrets":[""]}'.length)}"]}`;
  expect(Buffer.byteLength(text)).toBe(bytes);
  return text;
}

const LIMIT = 4096;
const tooLarge = (): TooManySecretsError => new TooManySecretsError('too large');

describe('readJsonBody', () => {
  it('reads a body of exactly the limit, arriving in chunks', async () => {
    const text = jsonOf(LIMIT);
    const body = source(chunked(text, 1000));
    await expect(readJsonBody(streamingRequest(body.stream), LIMIT, tooLarge)).resolves.toEqual(JSON.parse(text));
    expect(body.cancelled()).toBe(false);
  });

  it('reads a body the library buffered, as without HTTP streaming', async () => {
    const request = new HttpRequest({ method: 'POST', url: 'https://broker.example/api/x', body: { string: '{"secrets":["a"]}' } });
    await expect(readJsonBody(request, LIMIT, tooLarge)).resolves.toEqual({ secrets: ['a'] });
  });

  it('throws the given error one byte past the limit', async () => {
    const error = new TooManySecretsError('past the limit');
    const body = source(chunked(jsonOf(LIMIT + 1), 1000));
    await expect(readJsonBody(streamingRequest(body.stream), LIMIT, () => error)).rejects.toBe(error);
    expect(body.cancelled()).toBe(true);
  });

  it('cancels a chunked body as soon as the count passes the limit, without pulling it to its end', async () => {
    const chunks = Array.from({ length: 1000 }, () => new Uint8Array(1024).fill(0x20));
    const body = source(chunks);
    await expect(readJsonBody(streamingRequest(body.stream), LIMIT, tooLarge)).rejects.toThrow(TooManySecretsError);
    expect(body.cancelled()).toBe(true);
    // 4 chunks fit in 4096 bytes; the 5th passes the limit.
    expect(body.pulled()).toBe(5);
  });

  it('counts what arrives, not what Content-Length says', async () => {
    const chunks = Array.from({ length: 1000 }, () => new Uint8Array(1024).fill(0x20));
    const body = source(chunks);
    const request = streamingRequest(body.stream, { 'content-length': '10' });
    await expect(readJsonBody(request, LIMIT, tooLarge)).rejects.toThrow(TooManySecretsError);
    expect(body.pulled()).toBe(5);
  });

  it('fails at once, reading nothing, when Content-Length is past the limit', async () => {
    const body = source(chunked(jsonOf(LIMIT + 1), 1000));
    const request = streamingRequest(body.stream, { 'content-length': String(LIMIT + 1) });
    await expect(readJsonBody(request, LIMIT, tooLarge)).rejects.toThrow(TooManySecretsError);
    expect(body.pulled()).toBe(0);
    expect(body.cancelled()).toBe(true);
  });

  it.each([
    ['not UTF-8', [Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d)], 'The body is not valid UTF-8'],
    ['UTF-8 cut inside a character', [new TextEncoder().encode('{"secrets":["é"]}').subarray(0, 14)], 'The body is not valid UTF-8'],
    ['not JSON', chunked('{secrets:', 4), 'The body is not valid JSON'],
    ['empty', [], 'The body is not valid JSON'],
  ])('refuses a body that is %s with 400 InvalidRequest', async (_label, chunks, message) => {
    const read = readJsonBody(streamingRequest(source(chunks).stream), LIMIT, tooLarge);
    await expect(read).rejects.toThrow(InvalidRequestError);
    await expect(read).rejects.toMatchObject({ status: 400, code: 'InvalidRequest', message });
  });

  it('decodes a character split across chunks', async () => {
    const chunks = chunked('{"secrets":["é"]}', 14); // "é" is bytes 13-14: chunk 1 ends inside it
    await expect(readJsonBody(streamingRequest(source(chunks).stream), LIMIT, tooLarge)).resolves.toEqual({ secrets: ['é'] });
  });

  it('refuses a request without a body as not JSON', async () => {
    const request = new HttpRequest({ method: 'POST', url: 'https://broker.example/api/x' });
    await expect(readJsonBody(request, LIMIT, tooLarge)).rejects.toMatchObject({ status: 400, message: 'The body is not valid JSON' });
  });
});
