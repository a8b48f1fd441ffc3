import { request } from 'node:https';
import tls from 'node:tls';
import { gzipSync } from 'node:zlib';
import type { TokenCredential } from '@azure/core-auth';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { startIngestionEndpoint, type Envelope, type IngestionEndpoint } from '../../local/emulators/ingestionEndpoint';
import { EMULATOR_ISSUER, tokenSecretBytes } from '../../local/emulators/managedIdentityEndpoint';
import { startOidcIssuer } from '../../local/emulators/oidcIssuer';
import { createTelemetry, type Telemetry } from '../../shared/telemetry';

/** Modules a telemetry-off cold start must never load. */
const SDK_MODULE = /[\\/]node_modules[\\/](applicationinsights|@azure[\\/]monitor-opentelemetry[^\\/]*|@opentelemetry[\\/][^\\/]+)[\\/]/;

function loadedSdkModules(): string[] {
  return Object.keys(require.cache).filter((path) => SDK_MODULE.test(path));
}

function ofType(items: Envelope[], baseType: string): Envelope[] {
  return items.filter((item) => item.data.baseType === baseType);
}

const savedStatsbeat = process.env.APPLICATION_INSIGHTS_NO_STATSBEAT;
beforeAll(() => {
  // Statsbeat would otherwise report SDK health to Microsoft's public endpoint from this test run.
  process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = 'true';
});
afterAll(() => {
  if (savedStatsbeat === undefined) delete process.env.APPLICATION_INSIGHTS_NO_STATSBEAT;
  else process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = savedStatsbeat;
});

describe('telemetry without a connection string', () => {
  it('does nothing, loads no SDK module and never throws', async () => {
    await jest.isolateModulesAsync(async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy inside the isolated registry
      const fresh = require('../../shared/telemetry') as typeof import('../../shared/telemetry');
      for (const connectionString of [undefined, '', '   ']) {
        const telemetry = fresh.createTelemetry(connectionString);
        telemetry.trackEvent('SecretAccess', { vault: 'main', status: 200 }, { durationMs: 1 });
        telemetry.trackDependency({
          name: 'GET /secrets/{name}',
          target: 'v.vault.azure.net',
          type: 'Azure Key Vault',
          data: 'https://v.vault.azure.net/secrets/x',
          durationMs: 3,
          resultCode: 200,
          success: true,
        });
        telemetry.trackRequest({
          name: 'GET /api/secrets/{name}',
          url: 'http://localhost/api/secrets/x',
          durationMs: 5,
          resultCode: 200,
          success: true,
        });
        telemetry.trackAvailability({ name: 'health', runLocation: 'local', success: true, durationMs: 1 });
        telemetry.trackException(new Error('boom'));
        await expect(telemetry.flush()).resolves.toBeUndefined();
      }
      expect(loadedSdkModules()).toEqual([]);
    });
  });
});

describe('telemetry to an ingestion endpoint', () => {
  /** Short, because Node's JSON.parse message quotes only the first few characters of its input. */
  const MARKER = 's3cr3tZq8';
  const defaultCAs = tls.getCACertificates('default');
  let endpoint: IngestionEndpoint;
  let telemetry: Telemetry;

  beforeAll(async () => {
    endpoint = await startIngestionEndpoint();
    // The exporter only speaks HTTPS; trust the endpoint's self-signed certificate in this process.
    tls.setDefaultCACertificates([...defaultCAs, endpoint.certPem]);
    telemetry = createTelemetry(endpoint.connectionString, { hostRecordsRequests: false, roleName: 'telemetry-test' });
  });

  afterAll(async () => {
    await endpoint?.stop();
    tls.setDefaultCACertificates(defaultCAs);
  });

  beforeEach(() => endpoint.clear());

  it('loads the SDK on the first track call, not when created or flushed empty', async () => {
    await jest.isolateModulesAsync(async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy inside the isolated registry
      const fresh = require('../../shared/telemetry') as typeof import('../../shared/telemetry');
      const lazy = fresh.createTelemetry(endpoint.connectionString, { hostRecordsRequests: false });
      await lazy.flush(); // nothing tracked: nothing to load
      expect(loadedSdkModules()).toEqual([]);
      lazy.trackEvent('First', { n: 1 });
      expect(loadedSdkModules().some((path) => /[\\/]applicationinsights[\\/]/.test(path))).toBe(true);
      await lazy.flush();
    });
    expect(ofType(endpoint.items(), 'EventData').map((e) => e.data.baseData.name)).toEqual(['First']);
  });

  it('sends events, dependencies, requests, availability results and exceptions with their types and properties', async () => {
    telemetry.trackEvent(
      'SecretAccess',
      { vault: 'main', secret: 'erp-token', status: 200, cached: false, gone: undefined, nothing: null },
      { durationMs: 12.5 },
    );
    telemetry.trackDependency({
      name: 'GET /secrets/{name}',
      target: 'contoso.vault.azure.net',
      type: 'Azure Key Vault',
      data: 'https://contoso.vault.azure.net/secrets/erp-token?api-version=7.5',
      durationMs: 42,
      resultCode: 404,
      success: false,
      properties: { vault: 'main', secret: 'erp-token' },
    });
    telemetry.trackDependency({
      name: 'cache lookup',
      target: 'memory',
      type: 'SecretCache',
      data: 'main/erp-token@latest',
      durationMs: 1,
      resultCode: 'hit',
      success: true,
    });
    telemetry.trackRequest({
      name: 'GET /api/secrets/{name}',
      url: 'http://localhost:7071/api/secrets/erp-token?code=function-key',
      durationMs: 1500,
      resultCode: 403,
      success: true,
      properties: { function: 'resolveSecret', invocationId: 'inv-1' },
    });
    telemetry.trackAvailability({
      name: 'vault reachable',
      runLocation: 'local',
      success: true,
      durationMs: 250,
      message: 'ok',
      properties: { vault: 'main' },
    });
    telemetry.trackException(new RangeError('out of range'), { errorId: 'e-1', function: 'resolveSecret' });

    await telemetry.flush();
    const items = endpoint.items();

    const [event] = ofType(items, 'EventData');
    expect(event?.name).toBe('Microsoft.ApplicationInsights.Event');
    expect(event?.data.baseData).toMatchObject({
      name: 'SecretAccess',
      properties: { vault: 'main', secret: 'erp-token', status: '200', cached: 'false' },
      measurements: { durationMs: 12.5 },
    });
    expect(event?.data.baseData.properties).not.toHaveProperty('gone');
    expect(event?.data.baseData.properties).not.toHaveProperty('nothing');
    expect(event?.tags?.['ai.cloud.role']).toBe('telemetry-test');

    const dependencies = ofType(items, 'RemoteDependencyData');
    expect(dependencies).toHaveLength(2);
    // A URL-shaped call: the exporter's HTTP shape, with the query string dropped and our type kept as a property.
    expect(dependencies.find((d) => d.data.baseData.name === 'GET /secrets/{name}')?.data.baseData).toMatchObject({
      type: 'Http',
      target: 'contoso.vault.azure.net',
      data: 'https://contoso.vault.azure.net/secrets/erp-token',
      resultCode: '404',
      success: false,
      duration: '00:00:00.042',
      properties: { vault: 'main', secret: 'erp-token', dependencyType: 'Azure Key Vault' },
    });
    // Anything else keeps its type verbatim; the result code travels as a property.
    expect(dependencies.find((d) => d.data.baseData.name === 'cache lookup')?.data.baseData).toMatchObject({
      type: 'SecretCache',
      target: 'memory',
      data: 'main/erp-token@latest',
      success: true,
      properties: { resultCode: 'hit' },
    });

    const [req] = ofType(items, 'RequestData');
    expect(req?.name).toBe('Microsoft.ApplicationInsights.Request');
    expect(req?.data.baseData).toMatchObject({
      name: 'GET /api/secrets/{name}',
      url: 'http://localhost:7071/api/secrets/erp-token',
      responseCode: '403',
      success: true,
      duration: '00:00:01.500',
      properties: { function: 'resolveSecret', invocationId: 'inv-1' },
    });
    expect(req?.tags?.['ai.operation.name']).toBe('GET /api/secrets/{name}');

    const [availability] = ofType(items, 'AvailabilityData');
    expect(availability?.data.baseData).toMatchObject({
      name: 'vault reachable',
      runLocation: 'local',
      success: true,
      message: 'ok',
      duration: '00:00:00.250',
      properties: { vault: 'main' },
    });

    const [exception] = ofType(items, 'ExceptionData');
    expect(exception?.data.baseData).toMatchObject({
      severityLevel: 'Error',
      exceptions: [{ typeName: 'RangeError', message: 'message withheld', hasFullStack: true }],
      properties: { errorId: 'e-1', function: 'resolveSecret' },
    });

    const sent = endpoint.raw().join('\n');
    expect(sent).not.toContain('function-key');
    expect(sent).not.toContain('api-version');
  });

  it('sends an exception as its type and a normalised message, never the original message', async () => {
    let parseError: unknown;
    try {
      JSON.parse(MARKER);
    } catch (err) {
      parseError = err;
    }
    // Node's JSON.parse quotes its input in the message: exactly what must not leave the process.
    expect(String(parseError)).toContain(MARKER);
    const vaultError = Object.assign(new Error(`vault answered ${MARKER}\n    at fake (${MARKER}.js:1:1)`), {
      name: 'RestError',
      code: 'SecretNotFound',
      statusCode: 404,
    });

    telemetry.trackException(parseError, { errorId: 'e-parse' });
    telemetry.trackException(vaultError, { errorId: 'e-vault' });
    telemetry.trackException(MARKER, { errorId: 'e-string' });
    await telemetry.flush();

    const byId = (id: string) =>
      ofType(endpoint.items(), 'ExceptionData').find((e) => (e.data.baseData.properties as Record<string, string>).errorId === id);
    const details = (id: string) => (byId(id)?.data.baseData.exceptions as Array<Record<string, unknown>> | undefined)?.[0];

    expect(details('e-parse')).toMatchObject({ typeName: 'SyntaxError', message: 'message withheld', hasFullStack: true });
    const frames = details('e-parse')?.parsedStack as Array<{ fileName?: string }>;
    expect(frames.some((f) => f.fileName?.endsWith('telemetry.test.ts'))).toBe(true);
    expect(details('e-vault')).toMatchObject({ typeName: 'RestError', message: 'message withheld (code=SecretNotFound, status=404)' });
    expect(details('e-string')).toMatchObject({ typeName: 'NonError', message: 'message withheld (thrown=string)' });

    expect(endpoint.raw().length).toBeGreaterThan(0);
    for (const body of endpoint.raw()) expect(body).not.toContain(MARKER);
  });

  it('never throws into the caller, whatever it is given', async () => {
    const broken = createTelemetry('this is not a connection string');
    for (const t of [telemetry, broken]) {
      expect(() => {
        t.trackEvent('Odd', { n: Number.NaN }, { bad: Number.POSITIVE_INFINITY });
        t.trackDependency({ name: '', target: '', type: '', data: 'not a url', durationMs: Number.NaN, resultCode: '', success: false });
        t.trackRequest({ name: '', url: '::', durationMs: -1, resultCode: 0, success: false });
        t.trackAvailability({ name: '', runLocation: '', success: false, durationMs: Number.POSITIVE_INFINITY });
        t.trackException(undefined);
        t.trackException(Object.create(null));
      }).not.toThrow();
      await expect(t.flush()).resolves.toBeUndefined();
    }
  });
});

describe('telemetry to a component with local authentication off', () => {
  const SECRET = 'ingestion-test-key';
  const defaultCAs = tls.getCACertificates('default');
  let endpoint: IngestionEndpoint;
  const scopes: string[] = [];
  /** An identity's token as the managed-identity endpoint issues it: audience = the scope's resource. */
  const credential: TokenCredential = {
    async getToken(scope) {
      const wanted = Array.isArray(scope) ? (scope[0] ?? '') : scope;
      scopes.push(wanted);
      const token = await new SignJWT({ oid: 'app-identity' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(EMULATOR_ISSUER)
        .setAudience(wanted.replace(/\.default$/, ''))
        .setExpirationTime('1h')
        .sign(tokenSecretBytes(SECRET));
      return { token, expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };

  beforeAll(async () => {
    endpoint = await startIngestionEndpoint({ entraOnly: { tokenSecret: SECRET } });
    tls.setDefaultCACertificates([...defaultCAs, endpoint.certPem]);
  });
  afterAll(async () => {
    await endpoint?.stop();
    tls.setDefaultCACertificates(defaultCAs);
  });
  beforeEach(() => endpoint.clear());

  it('refuses what the connection string alone sends: a forged audit record lands nowhere', async () => {
    const forged = createTelemetry(endpoint.connectionString, { roleName: 'forger' });
    const refusedBefore = endpoint.refusedItems();
    forged.trackEvent('SecretAudit', { caller: 'someone-else', outcome: 'allowed' });
    await forged.flush();
    expect(endpoint.items()).toEqual([]);
    expect(endpoint.refusedItems()).toBeGreaterThan(refusedBefore);
  });

  it("takes telemetry sent with the app identity's token for Azure Monitor", async () => {
    const telemetry = createTelemetry(endpoint.connectionString, { roleName: 'broker', credential });
    telemetry.trackEvent('SecretAudit', { caller: 'erp', outcome: 'allowed' });
    await telemetry.flush();
    expect(ofType(endpoint.items(), 'EventData').map((e) => e.data.baseData.name)).toEqual(['SecretAudit']);
    expect(scopes).toContain('https://monitor.azure.com/.default');
  });

  it("answers Learn's statuses: 400 on v2/track, 401 without or with a bad token, 403 for another audience", async () => {
    const item = JSON.stringify({
      name: 'Microsoft.ApplicationInsights.Event',
      time: '2026-12-06T00:00:00Z',
      data: { baseType: 'EventData', baseData: { name: 'x' } },
    });
    const post = async (path: string, authorization?: string) => {
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          `${endpoint.url}${path}`,
          {
            method: 'POST',
            ca: endpoint.certPem,
            headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
          },
          (r) => {
            const chunks: Buffer[] = [];
            r.on('data', (c: Buffer) => chunks.push(c));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          },
        );
        req.on('error', reject);
        req.end(item);
      });
      return { status: res.status, message: (JSON.parse(res.body) as { errors: { message: string }[] }).errors[0]?.message };
    };
    const good = (await credential.getToken('https://monitor.azure.com/.default'))?.token ?? '';
    const vault = (await credential.getToken('https://vault.azure.net/.default'))?.token ?? '';
    expect(await post('/v2/track', `Bearer ${good}`)).toEqual({ status: 400, message: 'Authentication not supported' });
    expect(await post('/v2.1/track')).toEqual({ status: 401, message: 'Authorization required' });
    expect(await post('/v2.1/track', `Bearer ${good.slice(0, -4)}AAAA`)).toEqual({ status: 401, message: 'Authorization required' });
    expect(await post('/v2.1/track', `Bearer ${vault}`)).toEqual({ status: 403, message: 'Unauthorized' });
    expect(endpoint.items()).toEqual([]);
  });
});

describe('startIngestionEndpoint', () => {
  let endpoint: IngestionEndpoint;
  beforeAll(async () => {
    endpoint = await startIngestionEndpoint();
  });
  afterAll(() => endpoint.stop());

  function post(
    path: string,
    body: Buffer,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${endpoint.url}${path}`,
        { method: 'POST', ca: endpoint.certPem, headers: { 'content-type': 'application/json', ...headers } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  const envelope = (name: string) => ({
    name: 'Microsoft.ApplicationInsights.Event',
    time: new Date().toISOString(),
    iKey: 'k',
    data: { baseType: 'EventData', baseData: { ver: 2, name } },
  });

  it('accepts gzipped newline-delimited envelopes and answers like Breeze', async () => {
    endpoint.clear();
    const ndjson = [envelope('a'), envelope('b')].map((e) => JSON.stringify(e)).join('\n');
    const res = await post('/v2/track', gzipSync(ndjson), { 'content-encoding': 'gzip' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ itemsReceived: 2, itemsAccepted: 2, errors: [] });
    expect(endpoint.items().map((i) => i.data.baseData.name)).toEqual(['a', 'b']);
    expect(endpoint.raw()).toEqual([ndjson]);
  });

  it('accepts a plain JSON array on /v2.1/track and swallows live metrics calls', async () => {
    endpoint.clear();
    const res = await post('//v2.1/track', Buffer.from(JSON.stringify([envelope('c')])));
    expect(JSON.parse(res.body)).toMatchObject({ itemsReceived: 1, itemsAccepted: 1 });
    const ping = await post('/QuickPulseService.svc/ping?ikey=k', Buffer.from('{}'));
    expect(ping.status).toBe(200);
    expect(ping.headers['x-ms-qps-subscribed']).toBe('false');
    expect(endpoint.items()).toHaveLength(1);
  });
});

describe('startOidcIssuer', () => {
  const APP = '11111111-2222-3333-4444-555555555555';
  const AUDIENCE = 'api://secret-broker';

  it('issues tokens that verify against its discovery document; forged, expired and early ones do not', async () => {
    const issuer = await startOidcIssuer();
    try {
      const response = await fetch(`${issuer.issuer}/.well-known/openid-configuration`);
      const discovery = (await response.json()) as { issuer: string; jwks_uri: string };
      expect(discovery).toMatchObject({ issuer: issuer.issuer, jwks_uri: issuer.jwksUri });
      const keys = createRemoteJWKSet(new URL(discovery.jwks_uri));
      const verify = (token: string) => jwtVerify(token, keys, { issuer: discovery.issuer, audience: AUDIENCE, algorithms: ['RS256'] });

      const v2 = await verify(await issuer.issueToken({ appId: APP, audience: AUDIENCE, extra: { roles: ['Secrets.Read'] } }));
      expect(v2.protectedHeader).toMatchObject({ alg: 'RS256', typ: 'JWT', kid: expect.any(String) });
      expect(v2.payload).toMatchObject({
        iss: issuer.issuer,
        aud: AUDIENCE,
        azp: APP,
        tid: issuer.tenantId,
        ver: '2.0',
        roles: ['Secrets.Read'],
      });
      expect(v2.payload.sub).toBe(v2.payload.oid);
      expect(v2.payload).not.toHaveProperty('appid');

      const v1 = await verify(await issuer.issueToken({ appId: APP, audience: AUDIENCE, claimName: 'appid' }));
      expect(v1.payload).toMatchObject({ appid: APP, ver: '1.0' });
      expect(v1.payload).not.toHaveProperty('azp');

      const forged = await issuer.forgeToken({ appId: APP, audience: AUDIENCE });
      await expect(verify(forged)).rejects.toBeInstanceOf(joseErrors.JWSSignatureVerificationFailed);
      await expect(verify(await issuer.issueToken({ appId: APP, audience: AUDIENCE, expiresInSeconds: -600 }))).rejects.toBeInstanceOf(
        joseErrors.JWTExpired,
      );
      await expect(verify(await issuer.issueToken({ appId: APP, audience: AUDIENCE, notBeforeSeconds: 600 }))).rejects.toMatchObject({
        claim: 'nbf',
      });
      await expect(verify(await issuer.issueToken({ appId: APP, audience: 'api://someone-else' }))).rejects.toMatchObject({ claim: 'aud' });
    } finally {
      await issuer.stop();
    }
  });
});
