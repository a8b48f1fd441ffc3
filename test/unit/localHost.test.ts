import { startLocalHost } from '../../local/host';
import type { FunctionDefinition } from '../../functions/index';
import { filler, streamingPost } from '../support/streamingPost';

describe('the local host', () => {
  it('runs a timer function on its schedule and on demand, handing it a Timer', async () => {
    const inputs: unknown[] = [];
    const definitions: FunctionDefinition[] = [
      { kind: 'timer', name: 'tick', options: { schedule: '* * * * * *', handler: (timer) => void inputs.push(timer) } },
    ];
    const host = await startLocalHost({ definitions, port: 0, write: () => undefined });
    try {
      const deadline = Date.now() + 5_000;
      while (inputs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(inputs[0]).toEqual({ isPastDue: false, schedule: { adjustForDST: false } });
      const res = await fetch(`http://127.0.0.1:${host.port}/admin/functions/tick`, { method: 'POST', body: '{}' });
      expect(res.status).toBe(202);
      const unknown = await fetch(`http://127.0.0.1:${host.port}/admin/functions/nope`, { method: 'POST', body: '{}' });
      expect(unknown.status).toBe(404);
    } finally {
      await host.close();
    }
  });

  it('answers 405 with Allow for a known route and a wrong method, 404 elsewhere', async () => {
    const definitions: FunctionDefinition[] = [
      {
        kind: 'http',
        name: 'hello',
        options: { route: 'hello/{name}', methods: ['GET'], handler: (req) => Promise.resolve({ body: `hi ${req.params.name ?? ''}` }) },
      },
    ];
    const host = await startLocalHost({ definitions, port: 0, write: () => undefined });
    try {
      const ok = await fetch(`http://127.0.0.1:${host.port}/api/hello/w%C3%B6rld`);
      expect(await ok.text()).toBe('hi wörld');
      const wrong = await fetch(`http://127.0.0.1:${host.port}/api/hello/x`, { method: 'DELETE' });
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get('allow')).toBe('GET');
      expect((await fetch(`http://127.0.0.1:${host.port}/api/nothing`)).status).toBe(404);
    } finally {
      await host.close();
    }
  });

  it('lets a literal route shadow a parameter in Allow: `secrets/resolve` (POST) is not also `secrets/{name}` (GET)', async () => {
    const ok = (): Promise<{ body: string }> => Promise.resolve({ body: 'ok' });
    const definitions: FunctionDefinition[] = [
      { kind: 'http', name: 'batch', options: { route: 'secrets/resolve', methods: ['POST'], handler: ok } },
      { kind: 'http', name: 'one', options: { route: 'secrets/{name}', methods: ['GET'], handler: ok } },
    ];
    const host = await startLocalHost({ definitions, port: 0, write: () => undefined });
    try {
      const wrong = await fetch(`http://127.0.0.1:${host.port}/api/secrets/resolve`, { method: 'PUT' });
      expect([wrong.status, wrong.headers.get('allow'), wrong.headers.get('content-type')]).toEqual([
        405,
        'POST',
        'application/problem+json',
      ]);
      expect(await wrong.json()).toMatchObject({ status: 405, code: 'MethodNotAllowed' });
      const other = await fetch(`http://127.0.0.1:${host.port}/api/secrets/x`, { method: 'PUT' });
      expect([other.status, other.headers.get('allow')]).toEqual([405, 'GET']);
    } finally {
      await host.close();
    }
  });

  describe('request bodies', () => {
    const seen: { method: string; body: string | null; streamed: boolean }[] = [];
    const definitions: FunctionDefinition[] = [
      {
        kind: 'http',
        name: 'echo',
        options: {
          route: 'echo',
          methods: ['GET', 'POST'],
          handler: async (req) => {
            const streamed = req.body !== null;
            seen.push({ method: req.method, body: streamed ? await req.text() : null, streamed });
            return { body: 'ok' };
          },
        },
      },
      {
        kind: 'http',
        name: 'unread',
        options: { route: 'unread', methods: ['POST'], handler: () => Promise.resolve({ status: 202 }) },
      },
      {
        kind: 'http',
        name: 'capped',
        options: {
          route: 'capped',
          methods: ['POST'],
          handler: async (req) => {
            try {
              return { body: String((await req.arrayBuffer()).byteLength) };
            } catch (err: unknown) {
              return { status: 413, body: (err as Error).name };
            }
          },
        },
      },
      { kind: 'timer', name: 'tick', options: { schedule: '0 0 0 1 1 *', handler: () => undefined } },
    ];
    let host: Awaited<ReturnType<typeof startLocalHost>>;
    beforeAll(async () => {
      host = await startLocalHost({ definitions, port: 0, write: () => undefined, runTimers: false });
    });
    afterAll(() => host.close());

    it('streams a POST body to the handler, chunked or not, and gives a GET none', async () => {
      await fetch(`${host.url}/api/echo`);
      await fetch(`${host.url}/api/echo`, { method: 'POST', body: 'hello' });
      const chunked = await streamingPost(`${host.url}/api/echo`, { chunks: ['wör', 'ld'], end: true });
      expect(chunked.status).toBe(200);
      chunked.destroy();
      expect(seen).toEqual([
        { method: 'GET', body: null, streamed: false },
        { method: 'POST', body: 'hello', streamed: true },
        { method: 'POST', body: 'wörld', streamed: true },
      ]);
    });

    it('answers a request whose body it did not read to its end with Connection: close, then closes it', async () => {
      const res = await streamingPost(`${host.url}/api/unread`, { chunks: filler(64, 4096), end: false });
      expect(res.status).toBe(202);
      expect(res.headers.connection).toBe('close');
      expect(res.endedAtAnswer).toBe(false);
      await res.closed;
    });

    it('keeps the connection of a request whose body the handler read to its end', async () => {
      const res = await streamingPost(`${host.url}/api/echo`, { chunks: filler(4, 4096), end: true });
      expect(res.status).toBe(200);
      expect(res.headers.connection).toBe('keep-alive');
      res.destroy();
    });

    it('fails text()/arrayBuffer() past its own 1 MiB cap, and refuses trigger bodies past it with 413', async () => {
      const capped = await streamingPost(`${host.url}/api/capped`, { chunks: filler(32), end: true });
      expect(capped).toMatchObject({ status: 413, text: 'HostBodyTooLargeError' });
      const within = await streamingPost(`${host.url}/api/capped`, { chunks: filler(16), end: true });
      expect(within).toMatchObject({ status: 200, text: String(16 * 64 * 1024) });
      within.destroy();
      const admin = await streamingPost(`${host.url}/admin/functions/tick`, { chunks: filler(32), end: true });
      expect(admin.status).toBe(413);
      expect(admin.json).toMatchObject({ status: 413, code: 'InvalidRequest' });
      expect(admin.headers.connection).toBe('close');
    });
  });
});
