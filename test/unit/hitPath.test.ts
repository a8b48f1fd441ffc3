import { createHash } from 'node:crypto';
import { HttpRequest, InvocationContext } from '@azure/functions';
import type { HttpResponseInit } from '@azure/functions';
import { processAuditLog } from '../../shared/audit/auditLog';
import { AccessPolicy } from '../../shared/callers/accessPolicy';
import { CallerAuthenticator } from '../../shared/callers/authenticateCaller';
import { CallerQuota } from '../../shared/callers/callerQuota';
import { answerFromMemory } from '../../shared/http/hitPath';
import { withCaller } from '../../shared/http/httpPipeline';
import { RefusalLimiter } from '../../shared/http/refusalLimiter';
import { secretBody, secretRefOf, secretResponse } from '../../shared/http/secretResponses';
import type { Runtime } from '../../shared/runtime';
import { SecretResolver } from '../../shared/secrets/secretResolver';
import type { VaultGateway, VaultSecret } from '../../shared/secrets/vaultGateway';

const KEY = 'erp-key';
const VERSION = 'b'.repeat(32);
let vaultValue: VaultSecret;
let reads = 0;
const gateway = {
  alias: 'default',
  uri: 'https://contoso.vault.azure.net/',
  getSecret: () => {
    reads++;
    return Promise.resolve(vaultValue);
  },
} as unknown as VaultGateway;

const events: { name: string; properties: Record<string, unknown> }[] = [];
const requests: Record<string, unknown>[] = [];
const adopted: string[] = [];
let runtime: Runtime;
jest.mock('../../shared/runtime', () => ({ getRuntime: () => runtime }));

function build(telemetry: boolean, requestsPerMinute = 600, callerName = 'erp'): void {
  const policy = new AccessPolicy({
    callers: [
      {
        name: callerName,
        identities: [{ apiKeySha256: createHash('sha256').update(KEY).digest('hex') }],
        allow: ['erp-*'],
        deny: [],
        operator: false,
        roles: [],
        rateLimit: { requestsPerMinute },
      },
    ],
  });
  runtime = {
    policy,
    authenticator: new CallerAuthenticator(policy, undefined),
    quota: new CallerQuota(() => 0),
    refusals: new RefusalLimiter(() => undefined),
    resolver: new SecretResolver({
      vaults: new Map([['default', gateway]]),
      policy,
      cache: { ttlSeconds: 300, maxEntries: 100, staleIfErrorSeconds: 0 },
      signingKeys: { vault: 'default', names: [] },
      random: () => 0.5,
    }),
    telemetry: {
      enabled: telemetry,
      trackEvent: (name: string, properties: Record<string, unknown>) => events.push({ name, properties }),
      trackRequest: (r: Record<string, unknown>) => requests.push(r),
      trackException: () => undefined,
    },
    adoption: {
      record: (vault: string, name: string, caller: string, version: string) => adopted.push(`${vault}/${name} ${caller} ${version}`),
    },
  } as unknown as Runtime;
}

/** The awaited path, as functions/resolveSecret.ts composes it. */
const awaited = withCaller({ operation: 'resolve' }, async (request, _context, rt, { caller, audit }) => {
  const resolution = await rt.resolver.resolve(caller, secretRefOf(request), audit);
  const { secret } = resolution;
  rt.adoption.record(secret.vault, secret.name, caller.name, secret.version);
  return secretResponse(resolution, secretBody(resolution));
});

function request(name = 'erp-token', headers: Record<string, string> = { 'x-api-key': KEY }): [HttpRequest, InvocationContext] {
  return [
    new HttpRequest({
      method: 'GET',
      url: `https://broker.example/api/secrets/${name}`,
      params: { name },
      headers: { 'x-forwarded-for': '203.0.113.9:50123', 'x-ms-client-request-id': 'req-1', ...headers },
    }),
    new InvocationContext({
      invocationId: 'inv-1',
      functionName: 'resolveSecret',
      traceContext: { traceParent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` },
      options: { trigger: { type: 'httpTrigger', name: 'request', route: 'secrets/{name}' } },
    }),
  ];
}

/** The audit lines written since the last call. */
function auditLines(): string[] {
  const lines: string[] = [];
  processAuditLog().flush((line) => lines.push(line));
  return lines;
}

/** Both paths for the same request: the synchronous answer (asserted present) and the awaited one, each with its audit lines and telemetry. */
async function bothPaths(name?: string, headers?: Record<string, string>) {
  const fast = answerFromMemory(...request(name, headers));
  expect(fast).toBeDefined();
  const fastSide = { audit: auditLines(), events: events.splice(0), requests: requests.splice(0), adopted: adopted.splice(0) };
  const slow = await awaited(...request(name, headers));
  const slowSide = { audit: auditLines(), events: events.splice(0), requests: requests.splice(0), adopted: adopted.splice(0) };
  return { fast: fast as HttpResponseInit, fastSide, slow: slow as HttpResponseInit, slowSide };
}

describe('answerFromMemory', () => {
  beforeEach(() => {
    jest.useFakeTimers({ now: Date.parse('2026-12-06T12:00:00.000Z') });
    vaultValue = {
      name: 'erp-token',
      vault: 'default',
      version: VERSION,
      value: 'value-of-erp-token',
      contentType: 'text/plain',
      enabled: true,
      notBefore: null,
      expiresOn: null,
      updatedOn: '2026-12-01T00:00:00+00:00',
    };
    reads = 0;
    events.length = 0;
    requests.length = 0;
    adopted.length = 0;
    auditLines();
  });
  afterEach(() => jest.useRealTimers());

  it('answers nothing, and changes nothing, until the key proved valid and the value is cached', async () => {
    build(false);
    expect(answerFromMemory(...request())).toBeUndefined();
    expect([auditLines(), adopted]).toEqual([[], []]);
    const first = await awaited(...request());
    expect(first.status).toBe(200);
    expect(reads).toBe(1);
    auditLines();
    adopted.length = 0;
    expect(answerFromMemory(...request())).toMatchObject({ status: 200 });
    expect(reads).toBe(1);
  });

  it('writes the full record when no audit template can be made for the caller (a name like its markers), answering as the awaited path', async () => {
    build(false, 600, '\u0001t');
    await awaited(...request());
    auditLines();
    adopted.length = 0;
    const { fast, fastSide, slow, slowSide } = await bothPaths();
    expect(fast).toEqual(slow);
    expect(fastSide.audit).toHaveLength(1);
    expect(fastSide).toEqual(slowSide);
    expect(JSON.parse(fastSide.audit[0]!.slice('audit '.length))).toMatchObject({ caller: '\u0001t', status: 200 });
  });

  it('answers a cache hit with the same status, headers, body, audit line and adoption record as the awaited path', async () => {
    build(false);
    await awaited(...request());
    auditLines();
    adopted.length = 0;
    for (const name of ['erp-token', 'ERP-Token']) {
      const { fast, fastSide, slow, slowSide } = await bothPaths(name);
      expect(fast).toEqual(slow);
      expect(Object.keys(fast.headers as object)).toEqual(Object.keys(slow.headers as object));
      expect(fast.headers).toMatchObject({ 'X-Cache': 'HIT', ETag: `"${VERSION}"` });
      expect(fastSide.audit).toHaveLength(1);
      expect(fastSide).toEqual(slowSide);
      expect(JSON.parse(fastSide.audit[0]!.slice('audit '.length))).toMatchObject({ caller: 'erp', secret: name, cache: 'hit' });
    }
  });

  it('answers an expired value as the awaited path does, and the request telemetry and audit event with telemetry on', async () => {
    build(true);
    vaultValue = { ...vaultValue, expiresOn: '2026-12-01T00:00:00+00:00' };
    await awaited(...request());
    events.length = 0;
    requests.length = 0;
    adopted.length = 0;
    const { fast, fastSide, slow, slowSide } = await bothPaths();
    expect(fast).toEqual(slow);
    expect(fast.headers).toMatchObject({ 'X-Secret-Validity': 'expired' });
    expect(fastSide.requests).toHaveLength(1);
    expect(fastSide.events).toHaveLength(1);
    expect(fastSide).toEqual(slowSide);
  });

  it('leaves refusals, bearer tokens, both credentials and callers over their rate to the awaited path, charging nothing', async () => {
    build(false, 2);
    vaultValue = { ...vaultValue, name: 'other' };
    await awaited(...request());
    await awaited(...request('other'));
    auditLines();
    // The policy refuses "other"; the rate has no request left.
    expect(answerFromMemory(...request('other'))).toBeUndefined();
    expect(answerFromMemory(...request('erp-token', { authorization: 'Bearer x' }))).toBeUndefined();
    expect(answerFromMemory(...request('erp-token', { 'x-api-key': 'not-the-key' }))).toBeUndefined();
    expect(answerFromMemory(...request())).toBeUndefined();
    expect(auditLines()).toEqual([]);
    expect((await awaited(...request())).status).toBe(429);
  });

  it('forgets the prebuilt answer with its cache entry: a new value is answered anew', async () => {
    build(false);
    await awaited(...request());
    const before = answerFromMemory(...request());
    expect(before?.body).toContain('value-of-erp-token');
    vaultValue = { ...vaultValue, version: 'c'.repeat(32), value: 'rotated' };
    runtime.resolver.invalidate('default', 'erp-token');
    expect(answerFromMemory(...request())).toBeUndefined();
    await awaited(...request());
    const after = answerFromMemory(...request());
    expect(after?.body).toContain('"value":"rotated"');
    expect(after?.headers).toMatchObject({ ETag: `"${'c'.repeat(32)}"` });
  });
});
