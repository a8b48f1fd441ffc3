import { HttpRequest } from '@azure/functions';
import type { HttpRequestParams, HttpRequestUser } from '@azure/functions';

/**
 * The local host's `HttpRequest`: the same public shape as `@azure/functions`' class, built
 * cheaply. The library's class wraps an undici `Request` and web streams from the first moment,
 * which costs more than the whole of a cache-hit resolve; here the common members (method, url,
 * headers, query, params, text/json/arrayBuffer) read plain values, and the rare ones (body stream,
 * blob, formData, clone) are answered by a real `HttpRequest` built on first use, so handlers see
 * the library's exact behaviour either way.
 */
class LocalHttpRequest {
  readonly user: HttpRequestUser | null = null;
  private queryParams: URLSearchParams | undefined;
  private headerBag: Headers | undefined;
  private real: HttpRequest | undefined;
  private used = false;

  constructor(
    readonly method: string,
    readonly url: string,
    private readonly rawHeaders: Record<string, string>,
    readonly params: HttpRequestParams,
    private readonly bytes: Buffer,
  ) {}

  get headers(): Headers {
    this.headerBag ??= new Headers(this.rawHeaders);
    return this.headerBag;
  }

  get query(): URLSearchParams {
    this.queryParams ??= new URL(this.url).searchParams;
    return this.queryParams;
  }

  get body(): ReadableStream | null {
    return this.library().body;
  }

  get bodyUsed(): boolean {
    return this.used || (this.real?.bodyUsed ?? false);
  }

  readonly arrayBuffer = (): Promise<ArrayBuffer> => {
    this.consume();
    const copy = new Uint8Array(this.bytes.length);
    copy.set(this.bytes);
    return Promise.resolve(copy.buffer);
  };

  readonly text = (): Promise<string> => {
    this.consume();
    return Promise.resolve(this.bytes.toString('utf8'));
  };

  readonly json = async (): Promise<unknown> => JSON.parse(await this.text()) as unknown;
  readonly blob = (): Promise<Blob> => this.library().blob();
  readonly formData = (): Promise<FormData> => this.library().formData();
  readonly clone = (): HttpRequest => this.library().clone();

  private consume(): void {
    // Same rule as fetch's Request: a body can be read once.
    if (this.bodyUsed) throw new TypeError('Body is unusable: Body has already been read');
    this.used = true;
  }

  private library(): HttpRequest {
    this.real ??= new HttpRequest({
      method: this.method,
      url: this.url,
      headers: this.rawHeaders,
      params: this.params,
      ...(this.bytes.length > 0 ? { body: { bytes: this.bytes } } : {}),
    });
    return this.real;
  }
}

/** Builds the request a handler receives; TypeScript checks it has the library class's shape. */
export function createLocalHttpRequest(init: {
  method: string;
  url: string;
  headers: Record<string, string>;
  params: Record<string, string>;
  body: Buffer;
}): HttpRequest {
  return new LocalHttpRequest(init.method, init.url, init.headers, init.params, init.body);
}
