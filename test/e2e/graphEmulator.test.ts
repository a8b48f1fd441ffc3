/**
 * Drives the Graph client (shared/graph) with the real ManagedIdentityCredential (App Service
 * managed identity via IDENTITY_ENDPOINT/IDENTITY_HEADER) against the Graph emulator, through the
 * CONNECT proxy, plus raw HTTPS for the exact answers; all of it as startLocalAzure wires it (the dev
 * certificate covers graph.microsoft.com, app roles granted with `graphRoles` / `grantGraphRoles`).
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { inspect } from 'node:util';
import { ManagedIdentityCredential } from '@azure/identity';
import { generate } from 'selfsigned';
import { createDevCertificate } from '../../local/emulators/devCertificate';
import type { GraphEmulator } from '../../local/emulators/graphEmulator';
import { useLocalAzureInProcess } from '../../local/emulators/inProcessAzure';
import { startLocalAzure, type LocalAzure } from '../../local/emulators/localAzure';
import type { ManagedIdentityEndpoint } from '../../local/emulators/managedIdentityEndpoint';
import type { VaultProxy } from '../../local/emulators/vaultProxy';
import { GraphClient, GraphError } from '../../shared/graph/graphClient';

const GRAPH = 'https://graph.microsoft.com';
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Fast backoff so 5xx retries take milliseconds. */
const FAST_RETRY = { retryDelayInMs: 5, maxRetryDelayInMs: 20 };

/** One identity per permission case: a token (cached by msal per client id) carries the roles granted before its first use. */
const IDS = {
  owner: { clientId: '11111111-1111-4111-8111-111111111111', principalId: 'a1111111-1111-4111-8111-111111111111' },
  all: { clientId: '22222222-2222-4222-8222-222222222222', principalId: 'a2222222-2222-4222-8222-222222222222' },
  none: { clientId: '33333333-3333-4333-8333-333333333333', principalId: 'a3333333-3333-4333-8333-333333333333' },
  stranger: { clientId: '44444444-4444-4444-8444-444444444444', principalId: 'a4444444-4444-4444-8444-444444444444' },
};

let azure: LocalAzure;
let stateDir: string;
let certPem: string;
let identity: ManagedIdentityEndpoint;
let graph: GraphEmulator;
let proxy: VaultProxy;
let restore: () => void;
let app: { objectId: string; appId: string };
/** Every secret text this file saw: none may appear in an error. */
const seenSecrets: string[] = [];

function client(who: keyof typeof IDS, retry: ConstructorParameters<typeof GraphClient>[0]['retry'] = FAST_RETRY): GraphClient {
  return new GraphClient({ credential: new ManagedIdentityCredential({ clientId: IDS[who].clientId }), retry });
}

/** A token from the identity endpoint, as msal-node asks for it. */
function token(resource: string, clientId: string): Promise<string> {
  const url = `${identity.endpoint}?api-version=2019-08-01&resource=${encodeURIComponent(resource)}&client_id=${clientId}`;
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { 'X-IDENTITY-HEADER': identity.header } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve((JSON.parse(body) as { access_token: string }).access_token));
      })
      .on('error', reject);
  });
}

/** Raw HTTPS straight to the emulator, verifying its certificate for graph.microsoft.com. */
function raw(
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; json: any }> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: graph.port,
        servername: 'graph.microsoft.com',
        method,
        path,
        ca: certPem,
        agent: false,
        headers: {
          host: 'graph.microsoft.com',
          ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
          ...(payload ? { 'Content-Type': 'application/json' } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: body ? JSON.parse(body) : undefined }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** The exact shape of Graph's error body. */
function expectGraphError(json: any, code: string, message: string): void {
  expect(Object.keys(json)).toEqual(['error']);
  expect(json.error.code).toBe(code);
  expect(json.error.message).toBe(message);
  expect(json.error.innerError).toEqual({
    date: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/),
    'request-id': expect.stringMatching(GUID_RE),
    'client-request-id': expect.any(String),
  });
}

/** Runs `fn`, expecting a GraphError, and checks no secret text reached it. */
async function graphError(fn: () => Promise<unknown>): Promise<GraphError> {
  const err = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphError);
  const text = `${String(err)} ${JSON.stringify(err)} ${inspect(err, { depth: 5 })}`;
  for (const secret of seenSecrets) expect(text).not.toContain(secret);
  return err as GraphError;
}

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(os.tmpdir(), 'graph-emulator-'));
  azure = await startLocalAzure({
    stateDir,
    userAssignedIdentities: Object.values(IDS),
    graphRoles: [
      { principalId: IDS.owner.principalId, roles: ['Application.ReadWrite.OwnedBy'] },
      { principalId: IDS.stranger.principalId, roles: ['Application.ReadWrite.OwnedBy'] },
      { principalId: IDS.all.principalId, roles: ['Application.ReadWrite.All'] },
    ],
  });
  ({ identity, graph, proxy, certPem } = azure);
  // The in-process equivalent of the variables a host process gets (local/emulators/inProcessAzure.ts).
  restore = useLocalAzureInProcess(azure);

  app = graph.createApplication({ displayName: 'F&O connector', owners: [IDS.owner.principalId] });
  seenSecrets.push(graph.seedPassword(app.objectId, { displayName: 'initial' }).secretText);
});

afterAll(async () => {
  restore?.();
  await azure?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

afterEach(() => {
  graph.clearFaults();
  graph.resetCounts();
});

describe('the client against the emulator, through the proxy', () => {
  it('reads an application with its passwords, never their secret text', async () => {
    const got = await client('owner').getApplication(app.objectId);
    expect(got).toMatchObject({ id: app.objectId, appId: app.appId, displayName: 'F&O connector' });
    expect(got.passwordCredentials).toEqual([
      {
        keyId: expect.stringMatching(GUID_RE),
        displayName: 'initial',
        hint: expect.any(String),
        startDateTime: expect.any(String),
        endDateTime: expect.any(String),
      },
    ]);
    expect(JSON.stringify(got)).not.toContain(seenSecrets[0]);
  });

  it('adds a password: keyId, end date, hint, and the secret text on a non-enumerable property', async () => {
    const end = new Date(Date.now() + 180 * 86_400_000);
    const added = await client('owner').addPassword(app.objectId, { displayName: 'rotation 7f3a', endDateTime: end });
    seenSecrets.push(added.secretText);
    expect(added.keyId).toMatch(GUID_RE);
    expect(added.displayName).toBe('rotation 7f3a');
    expect(new Date(added.endDateTime ?? '').getTime()).toBe(end.getTime());
    expect(added.secretText.length).toBeGreaterThanOrEqual(16);
    expect(added.hint).toBe(added.secretText.slice(0, 3));
    expect(graph.secretMatches(app.objectId, added.keyId, added.secretText)).toBe(true);
    // The secret never leaves through serialisation or inspection of the answer.
    expect(JSON.stringify(added)).not.toContain(added.secretText);
    expect(inspect(added)).not.toContain(added.secretText);
    expect({ ...added }).not.toHaveProperty('secretText');
    expect(graph.passwordCredentials(app.objectId).map((p) => p.displayName)).toEqual(['initial', 'rotation 7f3a']);
  });

  it('removes a password (204)', async () => {
    const added = await client('all').addPassword(app.objectId, {
      displayName: 'short-lived',
      endDateTime: new Date(Date.now() + 86_400_000),
    });
    seenSecrets.push(added.secretText);
    await client('all').removePassword(app.objectId, added.keyId);
    expect(graph.requestCount({ operation: 'removePassword', status: 204 })).toBe(1);
    expect(graph.passwordCredentials(app.objectId).some((p) => p.keyId === added.keyId)).toBe(false);
  });

  it('sends client-request-id and gets it echoed', async () => {
    const t = await token(GRAPH, IDS.owner.clientId);
    const res = await raw('GET', `/v1.0/applications/${app.objectId}`, { token: t, headers: { 'client-request-id': 'abc-123' } });
    expect(res.status).toBe(200);
    expect(res.headers['client-request-id']).toBe('abc-123');
    expect(res.headers['request-id']).toMatch(GUID_RE);
  });
});

describe('raw answers', () => {
  it('GET by object id and by appId, and $select', async () => {
    const t = await token(GRAPH, IDS.all.clientId);
    const byId = await raw('GET', `/v1.0/applications/${app.objectId}`, { token: t });
    expect(byId.status).toBe(200);
    expect(byId.json['@odata.context']).toBe('https://graph.microsoft.com/v1.0/$metadata#applications/$entity');
    expect(byId.json.passwordCredentials.every((p: any) => p.secretText === null)).toBe(true);
    const byAppId = await raw('GET', `/v1.0/applications(appId='${app.appId}')`, { token: t });
    expect(byAppId.json.id).toBe(app.objectId);
    const selected = await raw('GET', `/v1.0/applications/${app.objectId}?$select=id,displayName`, { token: t });
    expect(selected.json).toEqual({
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#applications(id,displayName)/$entity',
      id: app.objectId,
      displayName: 'F&O connector',
    });
  });

  it('addPassword by appId answers the passwordCredential; end defaults to start + 2 years', async () => {
    const t = await token(GRAPH, IDS.all.clientId);
    const res = await raw('POST', `/v1.0/applications(appId='${app.appId}')/addPassword`, {
      token: t,
      body: { passwordCredential: { displayName: 'x' } },
    });
    expect(res.status).toBe(200);
    seenSecrets.push(res.json.secretText);
    expect(Object.keys(res.json).sort()).toEqual(
      ['@odata.context', 'customKeyIdentifier', 'displayName', 'endDateTime', 'hint', 'keyId', 'secretText', 'startDateTime'].sort(),
    );
    const start = new Date(res.json.startDateTime);
    const end = new Date(res.json.endDateTime);
    expect(end.getUTCFullYear() - start.getUTCFullYear()).toBe(2);
    expect(res.json.startDateTime).toMatch(/\.\d{7}Z$/);
    const gone = await raw('POST', `/v1.0/applications(appId='${app.appId}')/removePassword`, {
      token: t,
      body: { keyId: res.json.keyId },
    });
    expect(gone.status).toBe(204);
    expect(gone.body).toBe('');
  });

  it('401 InvalidAuthenticationToken without a token and with another resource’s token', async () => {
    const missing = await raw('GET', `/v1.0/applications/${app.objectId}`);
    expect(missing.status).toBe(401);
    expectGraphError(missing.json, 'InvalidAuthenticationToken', 'Access token is empty.');
    const vaultToken = await token('https://vault.azure.net', IDS.all.clientId);
    const wrong = await raw('GET', `/v1.0/applications/${app.objectId}`, { token: vaultToken });
    expect(wrong.status).toBe(401);
    expectGraphError(wrong.json, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.');
  });

  it('403 without a role, 403 for OwnedBy on an application it does not own, 404 for an unknown one', async () => {
    const none = await raw('POST', `/v1.0/applications/${app.objectId}/addPassword`, {
      token: await token(GRAPH, IDS.none.clientId),
      body: {},
    });
    expect(none.status).toBe(403);
    expectGraphError(none.json, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    const stranger = await raw('POST', `/v1.0/applications/${app.objectId}/addPassword`, {
      token: await token(GRAPH, IDS.stranger.clientId),
      body: {},
    });
    expect(stranger.status).toBe(403);
    expectGraphError(stranger.json, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    const unknown = '0f0f0f0f-0000-4000-8000-000000000000';
    const missing = await raw('GET', `/v1.0/applications/${unknown}`, { token: await token(GRAPH, IDS.all.clientId) });
    expect(missing.status).toBe(404);
    expectGraphError(
      missing.json,
      'Request_ResourceNotFound',
      `Resource '${unknown}' does not exist or one of its queried reference-property objects are not present.`,
    );
    expect(graph.passwordCredentials(app.objectId).length).toBe(2);
  });

  it('400 for an unknown keyId and for an application over its password limit', async () => {
    const t = await token(GRAPH, IDS.all.clientId);
    const keyId = '0e0e0e0e-0000-4000-8000-000000000000';
    const res = await raw('POST', `/v1.0/applications/${app.objectId}/removePassword`, { token: t, body: { keyId } });
    expect(res.status).toBe(400);
    expectGraphError(res.json, 'Request_BadRequest', `No password credential found with keyId '${keyId}'.`);

    const limited = graph.createApplication({ displayName: 'limited', maxPasswords: 2 });
    seenSecrets.push(graph.seedPassword(limited.objectId).secretText, graph.seedPassword(limited.objectId).secretText);
    const over = await raw('POST', `/v1.0/applications/${limited.objectId}/addPassword`, { token: t, body: {} });
    expect(over.status).toBe(400);
    expect(over.json.error.code).toBe('TooManyAppPasswords');
    expect(over.json.error.message).toBe('Not allowed to add 3 passwords. You can only add a maximum of 2 passwords.');
    expect(over.json.error.details).toEqual([{ target: 'passwordCredentials', code: 'TooManyAppPasswords' }]);
  });

  it('429 with Retry-After and the throttling body; 503 serviceNotAvailable', async () => {
    const t = await token(GRAPH, IDS.all.clientId);
    graph.injectFault({ kind: 'throttle', count: 1, retryAfterSeconds: 7 });
    graph.injectFault({ kind: 'unavailable', count: 1 });
    const throttled = await raw('GET', `/v1.0/applications/${app.objectId}`, { token: t });
    expect(throttled.status).toBe(429);
    expect(throttled.headers['retry-after']).toBe('7');
    expect(throttled.json.error).toMatchObject({
      code: 'TooManyRequests',
      message: 'Please retry again later.',
      innerError: { code: '429', message: 'Please retry after', status: '429' },
    });
    const down = await raw('GET', `/v1.0/applications/${app.objectId}`, { token: t });
    expect(down.status).toBe(503);
    expectGraphError(down.json, 'serviceNotAvailable', 'The service is temporarily unavailable.');
    expect(graph.injectedCount()).toBe(2);
  });

  it('tunnels graph.microsoft.com:443 through the proxy', async () => {
    const socket = await new Promise<import('node:net').Socket>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'CONNECT', path: 'graph.microsoft.com:443' });
      req.on('connect', (res, s) => (res.statusCode === 200 ? resolve(s) : reject(new Error(`CONNECT ${res.statusCode}`))));
      req.on('error', reject);
      req.end();
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        {
          createConnection: () => tls.connect({ socket, servername: 'graph.microsoft.com', ca: certPem }),
          path: `/v1.0/applications/${app.objectId}`,
          headers: { host: 'graph.microsoft.com' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(401);
  });
});

describe('the client: retries and refusals', () => {
  it('absorbs 429s, waiting Retry-After', async () => {
    graph.injectFault({ kind: 'throttle', count: 1, retryAfterSeconds: 1 });
    graph.injectFault({ kind: 'throttle', count: 1, retryAfterSeconds: 0 });
    const started = Date.now();
    const added = await client('owner').addPassword(app.objectId, {
      displayName: 'after throttling',
      endDateTime: new Date(Date.now() + 86_400_000),
    });
    seenSecrets.push(added.secretText);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(graph.requestCount({ operation: 'addPassword', status: 429 })).toBe(2);
    expect(graph.requestCount({ operation: 'addPassword', status: 200 })).toBe(1);
    await client('owner').removePassword(app.objectId, added.keyId);
  });

  it('absorbs 5xx with backoff (503 without Retry-After, 500, 504)', async () => {
    graph.injectFault({ kind: 'unavailable', count: 1 });
    graph.injectFault({ kind: 'unavailable', count: 1, status: 500 });
    graph.injectFault({ kind: 'unavailable', count: 1, status: 504 });
    const got = await client('owner').getApplication(app.objectId);
    expect(got.id).toBe(app.objectId);
    expect(graph.requestCount({ operation: 'getApplication' })).toBe(4);
  });

  it('gives up after its retries with Graph’s status, code and message', async () => {
    graph.injectFault({ kind: 'throttle', count: 10, retryAfterSeconds: 0 });
    const err = await graphError(() => client('owner', { ...FAST_RETRY, maxRetries: 2 }).getApplication(app.objectId));
    expect(err).toMatchObject({
      status: 429,
      code: 'TooManyRequests',
      graphMessage: 'Please retry again later.',
      operation: 'getApplication',
    });
    expect(graph.requestCount({ operation: 'getApplication' })).toBe(3);
  });

  it('does not wait for a Retry-After beyond its limit, and reports it', async () => {
    graph.injectFault({ kind: 'throttle', count: 1, retryAfterSeconds: 120 });
    const err = await graphError(() => client('owner').getApplication(app.objectId));
    expect(err).toMatchObject({ status: 429, retryAfterMs: 120_000 });
    expect(graph.requestCount({ operation: 'getApplication' })).toBe(1);
  });

  it('turns every refusal into a GraphError without secret text', async () => {
    const noRole = await graphError(() =>
      client('none').addPassword(app.objectId, { displayName: 'x', endDateTime: new Date(Date.now() + 86_400_000) }),
    );
    expect(noRole).toMatchObject({
      status: 403,
      code: 'Authorization_RequestDenied',
      graphMessage: 'Insufficient privileges to complete the operation.',
    });
    expect(noRole.requestId).toMatch(GUID_RE);
    const notOwner = await graphError(() => client('stranger').removePassword(app.objectId, '0e0e0e0e-0000-4000-8000-000000000000'));
    expect(notOwner).toMatchObject({ status: 403, code: 'Authorization_RequestDenied' });
    const unknown = await graphError(() => client('all').getApplication('0f0f0f0f-0000-4000-8000-000000000000'));
    expect(unknown).toMatchObject({ status: 404, code: 'Request_ResourceNotFound' });
    const badKey = await graphError(() => client('owner').removePassword(app.objectId, '0e0e0e0e-0000-4000-8000-000000000000'));
    expect(badKey).toMatchObject({ status: 400, code: 'Request_BadRequest', operation: 'removePassword' });
    expect(graph.requestCount({ status: 429 }) + graph.requestCount({ status: 503 })).toBe(0);
  });

  it('reports a failed token request as a GraphError', async () => {
    identity.setFailure({ status: 500 });
    try {
      const err = await graphError(() =>
        new GraphClient({
          credential: new ManagedIdentityCredential({ clientId: '55555555-5555-4555-8555-555555555555' }),
          retry: FAST_RETRY,
        }).getApplication(app.objectId),
      );
      expect(err.status).toBe(0);
      expect(graph.requestCount()).toBe(0);
    } finally {
      identity.setFailure(null);
    }
  });
});

describe('wired into startLocalAzure', () => {
  it('a user-assigned identity’s token for Graph, asked by client id, carries the roles granted to its principal', async () => {
    // As the rotation identity: a user-assigned identity the app names by ROTATION_IDENTITY_CLIENT_ID.
    const rotation = { clientId: '6c5d4e3f-2a1b-4c0d-9e8f-7a6b5c4d3e2f', principalId: 'd4c3b2a1-0f9e-4d8c-8b7a-6f5e4d3c2b1a' };
    azure.identity.addUserAssignedIdentity(rotation.clientId, rotation.principalId);
    azure.grantGraphRoles(rotation.principalId, ['Application.ReadWrite.OwnedBy']);
    const credential = new ManagedIdentityCredential({ clientId: rotation.clientId });
    const claims = (t: string): Record<string, unknown> =>
      JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    const graphToken = await credential.getToken('https://graph.microsoft.com/.default');
    expect(claims(graphToken?.token ?? '')).toMatchObject({
      aud: 'https://graph.microsoft.com',
      oid: rotation.principalId,
      appid: rotation.clientId,
      roles: ['Application.ReadWrite.OwnedBy'],
    });
    // The roles are Graph's: the same identity's vault token has none.
    const vaultToken = await credential.getToken('https://vault.azure.net/.default');
    expect(claims(vaultToken?.token ?? '')).not.toHaveProperty('roles');
    // And Graph takes them: an owner of the application adds a password, a non-owner is refused.
    const owned = graph.createApplication({ displayName: 'owned by rotation', owners: [rotation.principalId] });
    const client = new GraphClient({ credential, retry: FAST_RETRY });
    const added = await client.addPassword(owned.objectId, { displayName: 'rotation', endDateTime: new Date(Date.now() + 86_400_000) });
    seenSecrets.push(added.secretText);
    expect(graph.passwordCredentials(owned.objectId).map((p) => p.keyId)).toEqual([added.keyId]);
    expect(await graphError(() => client.getApplication(app.objectId))).toMatchObject({ status: 403, code: 'Authorization_RequestDenied' });
  });

  it('an identity granted no Graph role gets a token without roles', async () => {
    const none = await new ManagedIdentityCredential({ clientId: IDS.none.clientId }).getToken('https://graph.microsoft.com/.default');
    const payload = JSON.parse(Buffer.from((none?.token ?? '').split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    expect(payload['oid']).toBe(IDS.none.principalId);
    expect(payload).not.toHaveProperty('roles');
  });

  it('the dev certificate covers graph.microsoft.com; one from before Graph was covered is regenerated', async () => {
    expect(new X509Certificate(certPem).checkHost('graph.microsoft.com')).toBe('graph.microsoft.com');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'graph-cert-'));
    try {
      const old = await generate([{ name: 'commonName', value: 'Local Azure emulator dev CA' }], {
        keyType: 'rsa',
        keySize: 2048,
        algorithm: 'sha256',
        notAfterDate: new Date(Date.now() + 30 * 24 * 3600 * 1000),
        extensions: [
          { name: 'basicConstraints', cA: true, critical: true },
          {
            name: 'subjectAltName',
            altNames: [
              ...[
                '*.vault.azure.net',
                'management.azure.com',
                '*.azurewebsites.net',
                '*.scm.azurewebsites.net',
                '*.blob.core.windows.net',
                '*.table.core.windows.net',
                '*.queue.core.windows.net',
                'localhost',
              ].map((value) => ({ type: 2 as const, value })),
              { type: 7, ip: '127.0.0.1' },
            ],
          },
        ],
      });
      writeFileSync(path.join(dir, 'dev-ca.pem'), old.cert);
      writeFileSync(path.join(dir, 'dev-ca.key'), old.private);
      const fresh = await createDevCertificate(dir);
      expect(fresh.certPem).not.toBe(old.cert);
      expect(new X509Certificate(fresh.certPem).checkHost('graph.microsoft.com')).toBe('graph.microsoft.com');
      expect((await createDevCertificate(dir)).certPem).toBe(fresh.certPem);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
