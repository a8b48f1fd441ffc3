import type { IncomingMessage } from 'node:http';
import { HttpRequest } from '@azure/functions';
import type { HttpRequestInit, HttpRequestParams, HttpRequestUser } from '@azure/functions';

/** Most bytes of one request body the local host reads (the real host allows more; nothing here needs it). */
export const MAX_HOST_BODY_BYTES = 1024 * 1024;

/** A request body past the local host's own cap, MAX_HOST_BODY_BYTES. */
export class HostBodyTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`The body is larger than ${maxBytes} bytes`);
    this.name = 'HostBodyTooLargeError';
  }
}

/**
 * An incoming request's body as a web `ReadableStream`, pulled from the socket only as it is read,
 * as the Functions host hands it over with HTTP streaming. Bytes nobody asks for stay in the socket
 * (Node stops reading it once the request's small buffer is full), so nothing past what the handler
 * reads is held in memory. Past `maxBytes` the stream errors with HostBodyTooLargeError.
 *
 * Unlike `Readable.toWeb(req)`, cancelling the stream does not destroy the request: that would
 * destroy the socket before the handler's answer is written. The host closes the connection once
 * it has answered instead (see host.ts).
 */
export function streamRequestBody(req: IncomingMessage, maxBytes = MAX_HOST_BODY_BYTES): ReadableStream<Uint8Array> {
  const chunks = req.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer, undefined>;
  let received = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await chunks.next();
        if (next.done) return controller.close();
        received += next.value.length;
        if (received > maxBytes) {
          controller.error(new HostBodyTooLargeError(maxBytes));
          await chunks.return?.();
          return;
        }
        controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.length));
      },
      async cancel() {
        await chunks.return?.();
      },
    },
    // Nothing is read ahead of the reader: a chunk is pulled from the socket when it is asked for.
    { highWaterMark: 0 },
  );
}

/** Every byte of a stream, as one buffer (a stream from streamRequestBody stops at its cap). */
export async function readToEnd(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * The local host's `HttpRequest`: the same public shape as `@azure/functions`' class, built
 * cheaply. The library's class wraps an undici `Request` and web streams from the first moment,
 * which costs more than the whole of a cache-hit resolve; here the common members (method, url,
 * headers, query, params, body, text/json/arrayBuffer) read plain values or the socket directly, and
 * the rare ones (blob, formData, clone) are answered by a real `HttpRequest` built on first use, as
 * the library builds it with HTTP streaming, so handlers see the library's behaviour either way.
 *
 * The body streams from the socket (streamRequestBody): the handler decides how much of it to read.
 * A request without a body (every GET) creates no stream at all.
 */
class LocalHttpRequest {
  readonly user: HttpRequestUser | null = null;
  private queryParams: URLSearchParams | undefined;
  private headerBag: Headers | undefined;
  private stream: ReadableStream<Uint8Array> | undefined;
  private real: HttpRequest | undefined;
  private used = false;

  constructor(
    readonly method: string,
    readonly url: string,
    private readonly rawHeaders: Record<string, string>,
    readonly params: HttpRequestParams,
    private readonly source: IncomingMessage | undefined,
  ) {}

  get headers(): Headers {
    this.headerBag ??= new Headers(this.rawHeaders);
    return this.headerBag;
  }

  get query(): URLSearchParams {
    this.queryParams ??= new URL(this.url).searchParams;
    return this.queryParams;
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (this.real) return this.real.body as ReadableStream<Uint8Array> | null;
    if (this.source === undefined) return null;
    this.stream ??= streamRequestBody(this.source);
    return this.stream;
  }

  get bodyUsed(): boolean {
    return this.used || (this.real?.bodyUsed ?? false);
  }

  readonly arrayBuffer = async (): Promise<ArrayBuffer> => {
    const bytes = await this.bytes();
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    return copy.buffer;
  };

  readonly text = async (): Promise<string> => (await this.bytes()).toString('utf8');
  readonly json = async (): Promise<unknown> => JSON.parse(await this.text()) as unknown;
  readonly blob = (): Promise<Blob> => this.library().blob();
  readonly formData = (): Promise<FormData> => this.library().formData();
  readonly clone = (): HttpRequest => this.library().clone();

  private async bytes(): Promise<Buffer> {
    // Same rule as fetch's Request: a body can be read once.
    if (this.bodyUsed || this.body?.locked) throw new TypeError('Body is unusable: Body has already been read');
    this.used = true;
    const body = this.body;
    return body === null ? EMPTY : readToEnd(body);
  }

  private library(): HttpRequest {
    if (this.real) return this.real;
    const body = this.body;
    if (body === null) {
      this.real = new HttpRequest({ method: this.method, url: this.url, headers: this.rawHeaders, params: this.params });
    } else {
      // As the library builds a request with HTTP streaming (createStreamRequest): an undici
      // Request over the body stream. `nativeRequest` is its internal init field.
      const nativeRequest = new Request(this.url, {
        method: this.method,
        headers: this.rawHeaders,
        body,
        duplex: 'half',
      });
      this.real = new HttpRequest({ nativeRequest, params: this.params } as HttpRequestInit);
    }
    return this.real;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Builds the request a handler receives; TypeScript checks it has the library class's shape.
 * `body` is the incoming request whose body streams to the handler, or undefined for none.
 */
export function createLocalHttpRequest(init: {
  method: string;
  url: string;
  headers: Record<string, string>;
  params: Record<string, string>;
  body: IncomingMessage | undefined;
}): HttpRequest {
  return new LocalHttpRequest(init.method, init.url, init.headers, init.params, init.body);
}
