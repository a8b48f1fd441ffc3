import { HttpRequest, InvocationContext } from '@azure/functions';
import type { Caller } from '../../shared/callers/accessPolicy';
import { CallerQuota } from '../../shared/callers/callerQuota';
import { withCaller } from '../../shared/http/httpPipeline';
import { readJsonBody } from '../../shared/http/readJsonBody';
import { RefusalLimiter } from '../../shared/http/refusalLimiter';
import type { Runtime } from '../../shared/runtime';
import { MAX_BATCH_BODY_BYTES, batchBodyTooLarge, parseBatchRequest } from '../../shared/secrets/batchRequest';

const batcher: Caller = { name: 'batcher', operator: false, method: 'apiKey', requestsPerMinute: 3, missesPerMinute: 100 };
const events: Record<string, unknown>[] = [];
const mockRuntime = {
  authenticator: { authenticate: () => Promise.resolve(batcher), challengeFor: () => 'ApiKey' },
  quota: new CallerQuota(() => 0),
  refusals: new RefusalLimiter(() => undefined),
  telemetry: {
    enabled: true,
    trackEvent: (_name: string, properties: Record<string, unknown>) => events.push(properties),
    trackRequest: () => undefined,
    trackException: () => undefined,
  },
};
jest.mock('../../shared/runtime', () => ({ getRuntime: () => mockRuntime as unknown as Runtime }));

/** As functions/resolveSecrets.ts reads a batch: the body, then its shape, then one token per item. */
const resolveBatch = withCaller({ operation: 'batch', chargePerItem: true }, async (request, _context, _runtime, { charge }) => {
  const refs = parseBatchRequest(await readJsonBody(request, MAX_BATCH_BODY_BYTES, batchBodyTooLarge));
  charge(refs.length);
  return { status: 200, jsonBody: { secrets: refs.map(() => ({})) } };
});

async function post(body: string) {
  const request = new HttpRequest({ method: 'POST', url: 'https://broker.example/api/secrets/resolve', body: { string: body } });
  const context = new InvocationContext({ invocationId: 'inv-1', functionName: 'resolveSecrets' });
  return resolveBatch(request, context);
}

describe('withCaller with chargePerItem', () => {
  beforeEach(() => {
    events.length = 0;
    (mockRuntime as { quota: CallerQuota }).quota = new CallerQuota(() => 0);
  });

  it('charges one request for a batch refused as malformed or too large before any item is read, then answers 429', async () => {
    expect((await post('not json')).status).toBe(400);
    expect((await post('{"secrets":[]}')).status).toBe(400);
    expect((await post(JSON.stringify({ secrets: Array<string>(101).fill('a') }))).status).toBe(413);
    const fourth = await post('{"secrets":"a"}');
    expect(fourth.status).toBe(429);
    expect(fourth.headers).toMatchObject({ 'Retry-After': '20' });
    expect(events.map((e) => [e.status, e.code])).toEqual([
      [400, 'InvalidRequest'],
      [400, 'InvalidRequest'],
      [413, 'TooManySecrets'],
      [429, 'TooManyRequests'],
    ]);
  });

  it('charges a valid batch its items only', async () => {
    expect((await post('{"secrets":["a","b"]}')).status).toBe(200);
    expect((await post('{"secrets":["a"]}')).status).toBe(200);
    expect((await post('{"secrets":["a"]}')).status).toBe(429);
  });
});
