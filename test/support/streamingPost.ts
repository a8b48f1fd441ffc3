import http from 'node:http';

export interface StreamingPostOptions {
  /** Extra request headers; without `content-length` the body goes chunked. */
  readonly headers?: Record<string, string>;
  /** The body, written chunk by chunk with backpressure until the answer arrives. */
  readonly chunks: Iterable<Uint8Array | string>;
  /** End the request once every chunk is written (false: never send the end of the body). */
  readonly end: boolean;
}

export interface StreamingPostResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON, or undefined when it is empty or not JSON. */
  readonly json: Record<string, unknown> | undefined;
  /** Bytes of body the client's socket had accepted when the answer arrived. */
  readonly writtenAtAnswer: number;
  /** Whether the client had sent the whole request (body and end) when the answer arrived. */
  readonly endedAtAnswer: boolean;
  /** Resolves once the connection is closed, with the body bytes the socket accepted in all. */
  readonly closed: Promise<number>;
  /** Closes the connection from the client's side, if still open (after the test looked at it). */
  destroy(): void;
}

/**
 * POSTs a body with node:http, so a test can see the server answer before the body is sent:
 * chunks are written with backpressure (a write waits for 'drain') and writing stops once the
 * answer arrives or the connection closes. A write failing with EPIPE or ECONNRESET after the
 * answer arrived is expected (the server closed the connection) and ignored.
 */
export function streamingPost(url: string, options: StreamingPostOptions): Promise<StreamingPostResult> {
  return new Promise((resolve, reject) => {
    let written = 0;
    let ended = false;
    let answered = false;
    let closed = false;
    let wake: () => void = () => undefined;
    // A keep-alive agent of its own: the request asks for nothing about the connection.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const req = http.request(url, { method: 'POST', headers: options.headers, agent });
    const socketClosed = new Promise<number>((resolveClosed) => {
      req.once('socket', (socket) =>
        socket.once('close', () => {
          closed = true;
          wake();
          resolveClosed(written);
        }),
      );
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      closed = true;
      wake();
      if (!answered && !(err.code === 'EPIPE' || err.code === 'ECONNRESET')) reject(err);
    });
    req.once('response', (res) => {
      answered = true;
      wake();
      const writtenAtAnswer = written;
      const endedAtAnswer = ended;
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.once('error', reject);
      res.once('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          json: parseJson(text),
          writtenAtAnswer,
          endedAtAnswer,
          closed: socketClosed,
          destroy: () => {
            req.destroy();
            agent.destroy();
          },
        });
      });
    });
    // Before the answer: a request the server dropped without answering fails the test.
    void socketClosed.then(() => {
      if (!answered) setImmediate(() => reject(new Error(`the connection closed without an answer after ${written} bytes`)));
    });
    void (async () => {
      for (const chunk of options.chunks) {
        if (answered || closed) return;
        const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
        const drained = req.write(chunk, (err) => {
          if (!err) written += size;
        });
        if (!drained) {
          await new Promise<void>((resolveWake) => {
            wake = resolveWake;
            req.once('drain', resolveWake);
          });
          req.removeListener('drain', wake);
        }
      }
      if (options.end && !answered && !closed) {
        req.end(() => (ended = true));
      }
    })();
  });
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** `count` chunks of `size` bytes each (spaces: whitespace a JSON reader skips). */
export function* filler(count: number, size = 64 * 1024): Generator<Uint8Array> {
  const chunk = new Uint8Array(size).fill(0x20);
  for (let i = 0; i < count; i++) yield chunk;
}
