import { inspect } from 'node:util';
import type { TokenCredential } from '@azure/core-auth';
import { createHttpHeaders, createPipelineRequest, RestError, type HttpClient, type PipelineResponse } from '@azure/core-rest-pipeline';
import { GraphClient, GraphError } from '../../shared/graph/graphClient';
import { graphRetryDelay, graphRetryStrategy, retryAfterMs } from '../../shared/graph/graphRetry';

const SECRET = 'Zq8~secret-text-that-must-never-leak';
const credential: TokenCredential = {
  getToken: () => Promise.resolve({ token: 'header.payload.sig', expiresOnTimestamp: Date.now() + 3_600_000 }),
};

/** A client whose HTTP layer answers `status` and `body` to every request (no network, no Azure SDK mocked). */
function clientAnswering(status: number, body: string, headers: Record<string, string> = {}): { client: GraphClient; sent: string[] } {
  const sent: string[] = [];
  const httpClient: HttpClient = {
    sendRequest: (request) => {
      sent.push(`${request.method} ${request.url} ${request.headers.get('authorization') ?? ''}`);
      return Promise.resolve({
        request,
        status,
        headers: createHttpHeaders({ 'content-type': 'application/json', ...headers }),
        bodyAsText: body,
      });
    },
  };
  return { client: new GraphClient({ credential, httpClient, retry: { maxRetries: 0 } }), sent };
}

async function rejection(p: Promise<unknown>): Promise<GraphError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphError);
  const text = `${String(err)} ${JSON.stringify(err)} ${inspect(err, { depth: 5 })}`;
  expect(text).not.toContain(SECRET);
  return err as GraphError;
}

const opts = { retryDelayInMs: 100, maxRetryDelayInMs: 1_000, maxRetryAfterMs: 10_000 };
/** The smallest and the largest jittered delay. */
const low = (): number => 0;
const high = (): number => 0.999999;

function response(status: number, headers: Record<string, string> = {}): PipelineResponse {
  const request = createPipelineRequest({ url: 'https://graph.microsoft.com/v1.0/applications/x' });
  return { request, status, headers: createHttpHeaders(headers) };
}

describe('retryAfterMs', () => {
  it('reads delta-seconds and HTTP dates on 429 and 503 only', () => {
    expect(retryAfterMs(429, '7')).toBe(7_000);
    expect(retryAfterMs(503, ' 0 ')).toBe(0);
    const now = Date.parse('2026-12-06T10:00:00Z');
    expect(retryAfterMs(429, 'Sun, 06 Dec 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs(429, 'Sun, 06 Dec 2026 09:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs(429, 'soon')).toBeUndefined();
    expect(retryAfterMs(500, '7')).toBeUndefined();
    expect(retryAfterMs(429, undefined)).toBeUndefined();
  });
});

describe('graphRetryDelay', () => {
  it('waits what Retry-After says, up to the limit', () => {
    expect(graphRetryDelay({ retryCount: 0, status: 429, retryAfter: '3' }, opts)).toBe(3_000);
    expect(graphRetryDelay({ retryCount: 2, status: 503, retryAfter: '1' }, opts)).toBe(1_000);
    expect(graphRetryDelay({ retryCount: 0, status: 429, retryAfter: '11' }, opts)).toBeUndefined();
  });

  it('backs off exponentially with jitter for a 429 without Retry-After and for 408 and 5xx', () => {
    for (const status of [429, 408, 500, 502, 503, 504]) {
      expect(graphRetryDelay({ retryCount: 0, status }, opts, low)).toBe(50);
      expect(graphRetryDelay({ retryCount: 0, status }, opts, high)).toBe(100);
      expect(graphRetryDelay({ retryCount: 2, status }, opts, low)).toBe(200);
      expect(graphRetryDelay({ retryCount: 9, status }, opts, high)).toBe(1_000);
    }
  });

  it('retries a request that is not idempotent (addPassword) on 429 only: a 5xx or a dropped connection may come after the effect', () => {
    expect(graphRetryDelay({ retryCount: 0, status: 429, retryAfter: '3' }, opts, low, 'notIdempotent')).toBe(3_000);
    expect(graphRetryDelay({ retryCount: 0, status: 429 }, opts, low, 'notIdempotent')).toBe(50);
    for (const status of [408, 500, 503]) expect(graphRetryDelay({ retryCount: 0, status }, opts, low, 'notIdempotent')).toBeUndefined();
    expect(graphRetryDelay({ retryCount: 0, status: 503, retryAfter: '1' }, opts, low, 'notIdempotent')).toBeUndefined();
    expect(graphRetryDelay({ retryCount: 0, errorCode: 'ECONNRESET' }, opts, low, 'notIdempotent')).toBeUndefined();
  });

  it('does not retry 501, 505, other statuses or unknown errors', () => {
    for (const status of [200, 204, 400, 401, 403, 404, 501, 505]) expect(graphRetryDelay({ retryCount: 0, status }, opts)).toBeUndefined();
    expect(graphRetryDelay({ retryCount: 0, errorCode: 'ERR_SOMETHING' }, opts)).toBeUndefined();
  });

  it('retries connection failures', () => {
    for (const errorCode of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND']) {
      expect(graphRetryDelay({ retryCount: 1, errorCode }, opts, low)).toBe(100);
    }
  });
});

describe('graphRetryStrategy', () => {
  it('asks the pipeline to retry or to skip', () => {
    const strategy = graphRetryStrategy(opts);
    expect(strategy.retry({ retryCount: 0, response: response(429, { 'Retry-After': '2' }) })).toEqual({ retryAfterInMs: 2_000 });
    expect(strategy.retry({ retryCount: 0, response: response(403) })).toEqual({ skipStrategy: true });
    const reset = new RestError('socket hang up', { code: 'ECONNRESET' });
    expect(strategy.retry({ retryCount: 0, responseError: reset })).toHaveProperty('retryAfterInMs');
  });
});

describe('GraphClient', () => {
  const end = new Date('2027-06-01T00:00:00Z');

  it('sends the bearer token to the v1.0 URL and hides secretText from serialisation', async () => {
    const body = JSON.stringify({
      keyId: 'k1',
      displayName: 'r1',
      hint: SECRET.slice(0, 3),
      endDateTime: end.toISOString(),
      secretText: SECRET,
    });
    const { client, sent } = clientAnswering(200, body);
    const added = await client.addPassword('00000000-0000-4000-8000-000000000001', { displayName: 'r1', endDateTime: end });
    expect(added.secretText).toBe(SECRET);
    expect(JSON.stringify(added)).not.toContain(SECRET);
    expect(inspect(added)).not.toContain(SECRET);
    expect(sent).toEqual([
      'POST https://graph.microsoft.com/v1.0/applications/00000000-0000-4000-8000-000000000001/addPassword Bearer header.payload.sig',
    ]);
  });

  it('never puts an addPassword body it cannot use into the error', async () => {
    const { client } = clientAnswering(200, JSON.stringify({ displayName: 'no key id', secretText: SECRET }));
    const err = await rejection(client.addPassword('a', { displayName: 'r', endDateTime: end }));
    expect(err).toMatchObject({ status: 200, code: 'UnexpectedResponse' });
    const notJson = clientAnswering(200, `{"secretText":"${SECRET}"`);
    await rejection(notJson.client.addPassword('a', { displayName: 'r', endDateTime: end }));
  });

  it("carries Graph's code, message and request id, the message cut to a sentence", async () => {
    const long = 'x'.repeat(1_000);
    const { client } = clientAnswering(
      403,
      JSON.stringify({ error: { code: 'Authorization_RequestDenied', message: long, innerError: { 'request-id': 'r-1' } } }),
    );
    const err = await rejection(client.removePassword('a', 'k'));
    expect(err).toMatchObject({ status: 403, code: 'Authorization_RequestDenied', requestId: 'r-1', operation: 'removePassword' });
    expect(err.graphMessage.length).toBe(300);
  });

  it('names the status when the error has no Graph body, and never echoes the body', async () => {
    const { client } = clientAnswering(502, `<html>${SECRET}</html>`, { 'request-id': 'r-2' });
    const err = await rejection(client.getApplication('a'));
    expect(err).toMatchObject({ status: 502, code: 'HTTP502', requestId: 'r-2' });
  });

  it('reads an application, keeping only the fields it knows', async () => {
    const body = JSON.stringify({
      id: 'o1',
      appId: 'a1',
      displayName: 'App',
      passwordCredentials: [
        { keyId: 'k1', displayName: 'p', hint: 'abc', startDateTime: null, endDateTime: '2027-01-01T00:00:00Z', secretText: null },
        { nokey: true },
      ],
    });
    const { client, sent } = clientAnswering(200, body);
    expect(await client.getApplication('o1')).toEqual({
      id: 'o1',
      appId: 'a1',
      displayName: 'App',
      passwordCredentials: [{ keyId: 'k1', displayName: 'p', hint: 'abc', startDateTime: null, endDateTime: '2027-01-01T00:00:00Z' }],
    });
    expect(sent[0]).toContain('/applications/o1?$select=id,appId,displayName,passwordCredentials');
  });
});
