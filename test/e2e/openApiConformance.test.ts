/**
 * End to end: every answer the API gives, on every route, conforms to the OpenAPI document it
 * serves. One local host runs the real function set against the Key Vault emulator (with its fault
 * switches), Azurite (health reports) and a local OIDC issuer; each case makes a real request and
 * checks its status, content type, body schema (Ajv, JSON Schema 2020-12) and required headers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAzurite } from '../../local/emulators/azurite';
import type { KeyVaultFault } from '../../local/emulators/keyVaultTypes';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { startOidcIssuer } from '../../local/emulators/oidcIssuer';
import { openApiDocument } from '../../shared/http/openApiDocument';
import { startBrokerHost } from '../support/brokerHost';
import type { BrokerHost } from '../support/brokerHost';
import { conformanceProblems, documentAjv } from '../support/openApiConformance';
import type { Answer } from '../support/openApiConformance';

const sha = (key: string): string => createHash('sha256').update(key).digest('hex');
const ERP_APP = '11111111-1111-1111-1111-111111111111';
const STRANGER_APP = '99999999-9999-9999-9999-999999999999';
const AUDIENCE = 'api://secret-broker';
const ERP_KEY = `erp-${randomBytes(8).toString('hex')}`;
const OPS_KEY = `ops-${randomBytes(8).toString('hex')}`;
const LIMITED_KEY = `limited-${randomBytes(8).toString('hex')}`;
const VAULT = 'contoso-vault2';
/** The rotation identity: a user-assigned identity owning the application of `erp-rotatable`. */
const ROTATOR = { clientId: '81111111-1111-4111-8111-111111111111', principalId: 'd8111111-1111-4111-8111-111111111111' };

const policy = {
  callers: [
    {
      name: 'erp-integration',
      identities: [{ appId: ERP_APP }, { apiKeySha256: sha(ERP_KEY) }],
      allow: ['erp-*', 'partner/sftp-password'],
      deny: ['erp-admin-*'],
    },
    // Names one secret literally, so the health check reads it.
    { name: 'ops', identities: [{ apiKeySha256: sha(OPS_KEY) }], allow: ['erp-token'], operator: true },
    { name: 'limited', identities: [{ apiKeySha256: sha(LIMITED_KEY) }], allow: ['erp-*'], rateLimit: { requestsPerMinute: 2 } },
  ],
};

type DocumentPath = keyof typeof openApiDocument.paths;
/** How a case authenticates: an API key, a token of a known or unknown application, or nothing. */
type Credential = { key: string } | { app: string } | Record<string, never>;

interface Case {
  readonly path: DocumentPath;
  readonly method: 'GET' | 'POST';
  /** What follows `/api/`. */
  readonly url: string;
  readonly as: Credential;
  readonly body?: string;
  /** Injected into the Key Vault emulator for this request only. */
  readonly fault?: KeyVaultFault;
  /** A secret only this case reads, so the cache holds nothing to serve instead. */
  readonly fresh?: boolean;
  readonly status: number;
  readonly code?: string;
}

let azure: LocalAzure;
let azurite: Awaited<ReturnType<typeof startAzurite>>;
let issuer: Awaited<ReturnType<typeof startOidcIssuer>>;
let host: BrokerHost;
const ajv = documentAjv();
/** `METHOD path status` of every answer checked, to show every documented status was produced. */
const produced = new Set<string>();

async function call(c: Pick<Case, 'method' | 'url' | 'as' | 'body'>): Promise<Answer & { json: Record<string, any> | undefined }> {
  const headers = new Headers();
  if ('key' in c.as) headers.set('x-api-key', c.as.key);
  if ('app' in c.as) headers.set('authorization', `Bearer ${await issuer.issueToken({ appId: c.as.app, audience: AUDIENCE })}`);
  if (c.body !== undefined) headers.set('content-type', 'application/json');
  const response = await fetch(`${host.url}/api/${c.url}`, { method: c.method, headers, body: c.body });
  const text = await response.text();
  let json: Record<string, any> | undefined;
  try {
    json = text ? (JSON.parse(text) as Record<string, any>) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Checks an answer against the document and records its status as produced. */
function expectConformance(documentPath: DocumentPath, method: string, answer: Answer): void {
  expect(conformanceProblems(ajv, documentPath, method, answer)).toEqual([]);
  produced.add(`${method.toUpperCase()} ${documentPath} ${answer.status}`);
}

async function runHealthCheck(): Promise<void> {
  const res = await fetch(`${host.url}/admin/functions/healthCheck`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"input":null}',
  });
  expect(res.status).toBe(202);
}

beforeAll(async () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-openapi-'));
  [azure, azurite, issuer] = await Promise.all([
    startLocalAzure({
      stateDir,
      vaults: [VAULT, 'partner-vault'],
      userAssignedIdentities: [ROTATOR],
      graphRoles: [{ principalId: ROTATOR.principalId, roles: ['Application.ReadWrite.OwnedBy'] }],
    }),
    startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } }),
    startOidcIssuer(),
  ]);
  const kv = azure.keyVault;
  kv.setSecret(VAULT, 'erp-token', 'first-value', { contentType: 'text/plain', expiresOn: new Date(Date.now() + 365 * 86_400_000) });
  kv.setSecret(VAULT, 'erp-disabled', 'disabled-value', { enabled: false });
  kv.setSecret(VAULT, 'erp-expired', 'expired-value', { expiresOn: new Date(Date.now() - 86_400_000) });
  kv.setSecret(VAULT, 'erp-admin-password', 'admin-value');
  kv.setSecret('partner-vault', 'sftp-password', 'sftp-value');
  // A client secret of an application the rotation identity owns, tagged for rotation.
  const application = azure.graph.createApplication({ displayName: 'erp app', owners: [ROTATOR.principalId] });
  const password = azure.graph.seedPassword(application.objectId, { displayName: 'hand-made' });
  kv.setSecret(VAULT, 'erp-rotatable', password.secretText, {
    tags: { brokerRotation: 'entraApp', entraAppObjectId: application.objectId },
  });
  host = await startBrokerHost({
    ...azure.env,
    KEY_VAULT_URI: kv.vaultUri(VAULT),
    KEY_VAULT_ALIASES: `partner=${kv.vaultUri('partner-vault')}`,
    ACCESS_POLICY: JSON.stringify(policy),
    AUTH_ISSUER: issuer.issuer,
    AUTH_AUDIENCE: AUDIENCE,
    AzureWebJobsStorage: azurite.connectionString,
    ROTATION_IDENTITY_CLIENT_ID: ROTATOR.clientId,
    ROTATION_TARGETS: JSON.stringify({ 'erp-rotatable': application.objectId }),
    // Every request asks the vault, so a fault shows on the very next answer.
    CACHE_TTL_SECONDS: '0',
  });
});

afterAll(async () => {
  await host?.stop();
  await Promise.all([azure?.stop(), issuer?.stop()]);
  await azurite?.stop();
});

afterEach(() => azure.keyVault.clearFaults());

const erp = { key: ERP_KEY };
const batch = (secrets: unknown): string => JSON.stringify({ secrets });

/** The cases of the two single-secret routes, which answer alike. */
function secretCases(path: '/secrets/{name}' | '/secrets/{name}/metadata', suffix: string): [string, Case][] {
  const at = (name: string, query = ''): string => `secrets/${name}${suffix}${query}`;
  const c = (label: string, rest: Omit<Case, 'path' | 'method'>): [string, Case] => [label, { path, method: 'GET', ...rest }];
  return [
    c('a secret', { url: at('erp-token'), as: erp, status: 200 }),
    c('a secret outside its validity window', { url: at('erp-expired'), as: erp, status: 200 }),
    c('a secret of an aliased vault, for a token', { url: at('sftp-password', '?vault=partner'), as: { app: ERP_APP }, status: 200 }),
    c('a bad name', { url: at('erp_bad!name'), as: erp, status: 400, code: 'InvalidSecretName' }),
    c('a bad version', { url: at('erp-token', '?version=xyz'), as: erp, status: 400, code: 'InvalidVersion' }),
    c('no credential', { url: at('erp-token'), as: {}, status: 401, code: 'Unauthenticated' }),
    c('a wrong API key', { url: at('erp-token'), as: { key: 'nope' }, status: 401, code: 'Unauthenticated' }),
    c('a name the policy denies', { url: at('erp-admin-password'), as: erp, status: 403, code: 'Forbidden' }),
    c('a token of an unknown application', { url: at('erp-token'), as: { app: STRANGER_APP }, status: 403, code: 'Forbidden' }),
    c('a missing secret', { url: at('erp-nothing-here'), as: erp, status: 404, code: 'SecretNotFound' }),
    c('a missing version', { url: at('erp-token', `?version=${'0'.repeat(32)}`), as: erp, status: 404, code: 'SecretNotFound' }),
    c('a disabled secret', { url: at('erp-disabled'), as: erp, status: 409, code: 'SecretDisabled' }),
    c('a throttling vault', {
      url: at('erp-fresh'),
      as: erp,
      fresh: true,
      fault: { kind: 'status', status: 429, retryAfterSeconds: 1 },
      status: 429,
      code: 'VaultThrottled',
    }),
    c('a failing vault', {
      url: at('erp-fresh'),
      as: erp,
      fresh: true,
      fault: { kind: 'status', status: 500 },
      status: 503,
      code: 'VaultUnavailable',
    }),
    c('a vault firewall', {
      url: at('erp-fresh'),
      as: erp,
      fresh: true,
      fault: { kind: 'firewall' },
      status: 503,
      code: 'VaultForbiddenByFirewall',
    }),
    c('a missing role', { url: at('erp-fresh'), as: erp, fresh: true, fault: { kind: 'rbac' }, status: 503, code: 'VaultAccessDenied' }),
  ];
}

const cases: [string, Case][] = [
  ...secretCases('/secrets/{name}', ''),
  ...secretCases('/secrets/{name}/metadata', '/metadata'),
  ['the list, unauthenticated', { path: '/secrets', method: 'GET', url: 'secrets', as: {}, status: 401, code: 'Unauthenticated' }],
  [
    'the list, for an unknown application',
    { path: '/secrets', method: 'GET', url: 'secrets', as: { app: STRANGER_APP }, status: 403, code: 'Forbidden' },
  ],
  [
    'the list, from a throttling vault',
    {
      path: '/secrets',
      method: 'GET',
      url: 'secrets',
      as: erp,
      fault: { kind: 'status', status: 429, retryAfterSeconds: 1 },
      status: 429,
      code: 'VaultThrottled',
    },
  ],
  [
    'the list, from a failing vault',
    {
      path: '/secrets',
      method: 'GET',
      url: 'secrets',
      as: erp,
      fault: { kind: 'status', status: 500 },
      status: 503,
      code: 'VaultUnavailable',
    },
  ],
  // After the failures: a listing once read is served stale while the vault fails.
  ['the list', { path: '/secrets', method: 'GET', url: 'secrets', as: erp, status: 200 }],
  [
    'a batch of good and bad items',
    {
      path: '/secrets/resolve',
      method: 'POST',
      url: 'secrets/resolve',
      as: erp,
      body: batch([
        'erp-token',
        { name: 'sftp-password', vault: 'partner' },
        'erp-admin-password',
        'erp-missing',
        'bad name!',
        'erp-disabled',
      ]),
      status: 200,
    },
  ],
  [
    'a batch that is not JSON',
    { path: '/secrets/resolve', method: 'POST', url: 'secrets/resolve', as: erp, body: '{secrets:', status: 400, code: 'InvalidRequest' },
  ],
  [
    'a batch with an item of the wrong type',
    { path: '/secrets/resolve', method: 'POST', url: 'secrets/resolve', as: erp, body: batch([42]), status: 400, code: 'InvalidRequest' },
  ],
  [
    'a batch, unauthenticated',
    {
      path: '/secrets/resolve',
      method: 'POST',
      url: 'secrets/resolve',
      as: {},
      body: batch(['erp-token']),
      status: 401,
      code: 'Unauthenticated',
    },
  ],
  [
    'a batch, for an unknown application',
    {
      path: '/secrets/resolve',
      method: 'POST',
      url: 'secrets/resolve',
      as: { app: STRANGER_APP },
      body: batch(['erp-token']),
      status: 403,
      code: 'Forbidden',
    },
  ],
  [
    'a batch of 101 secrets',
    {
      path: '/secrets/resolve',
      method: 'POST',
      url: 'secrets/resolve',
      as: erp,
      body: batch(Array.from({ length: 101 }, (_, i) => `erp-${i}`)),
      status: 413,
      code: 'TooManySecrets',
    },
  ],
  ['the health report, unauthenticated', { path: '/health', method: 'GET', url: 'health', as: {}, status: 401, code: 'Unauthenticated' }],
  [
    'the health report, for a caller not an operator',
    { path: '/health', method: 'GET', url: 'health', as: erp, status: 403, code: 'Forbidden' },
  ],
  [
    'the adoption of a secret, unauthenticated',
    { path: '/secrets/{name}/adoption', method: 'GET', url: 'secrets/erp-token/adoption', as: {}, status: 401, code: 'Unauthenticated' },
  ],
  [
    'the adoption of a secret, for a caller not an operator',
    { path: '/secrets/{name}/adoption', method: 'GET', url: 'secrets/erp-token/adoption', as: erp, status: 403, code: 'Forbidden' },
  ],
  [
    'the adoption of a secret, for an operator',
    { path: '/secrets/{name}/adoption', method: 'GET', url: 'secrets/erp-token/adoption', as: { key: OPS_KEY }, status: 200 },
  ],
  [
    'the adoption of a bad name',
    {
      path: '/secrets/{name}/adoption',
      method: 'GET',
      url: 'secrets/erp_token/adoption',
      as: { key: OPS_KEY },
      status: 400,
      code: 'InvalidSecretName',
    },
  ],
  ...(
    [
      ['unauthenticated', 'erp-rotatable', {}, 401, 'Unauthenticated'],
      ['for a caller not an operator', 'erp-rotatable', erp, 403, 'Forbidden'],
      ['of a bad name', 'erp_rotatable', { key: OPS_KEY }, 400, 'InvalidSecretName'],
      ['of a missing secret', 'erp-missing', { key: OPS_KEY }, 404, 'SecretNotFound'],
      ['of a secret not tagged for it', 'erp-token', { key: OPS_KEY }, 409, 'SecretNotRotatable'],
      ['of a tagged secret', 'erp-rotatable', { key: OPS_KEY }, 202, undefined],
    ] as const
  ).map(([label, name, as, status, code]): [string, Case] => [
    `the rotation of a secret, ${label}`,
    { path: '/secrets/{name}/rotate', method: 'POST', url: `secrets/${name}/rotate`, as, status, ...(code ? { code } : {}) },
  ]),
  [
    'the rotation of a secret the rotation identity may not read',
    {
      path: '/secrets/{name}/rotate',
      method: 'POST',
      url: 'secrets/erp-token/rotate',
      as: { key: OPS_KEY },
      fault: { kind: 'rbac' },
      status: 503,
      code: 'VaultAccessDenied',
    },
  ],
  ['the OpenAPI document', { path: '/openapi.json', method: 'GET', url: 'openapi.json', as: {}, status: 200 }],
];

describe('every answer conforms to the OpenAPI document', () => {
  it.each(cases)('%s', async (_label, c) => {
    const name = c.fresh ? `erp-fresh-${randomBytes(4).toString('hex')}` : undefined;
    if (name) azure.keyVault.setSecret(VAULT, name, 'fresh-value');
    if (c.fault) azure.keyVault.setFault(c.fault);
    const answer = await call({ ...c, url: name ? c.url.replace('erp-fresh', name) : c.url });
    azure.keyVault.clearFaults();
    expect({ status: answer.status, code: answer.json?.code }).toEqual({ status: c.status, code: c.code });
    expectConformance(c.path, c.method, answer);
  });

  it('a secret answer carries the documented ETag, X-Cache and X-Secret-Validity', async () => {
    const fresh = await call({ method: 'GET', url: 'secrets/erp-token', as: erp });
    expect(fresh.headers.get('etag')).toMatch(/^"[0-9a-f]{32}"$/);
    expect(fresh.headers.get('x-cache')).toBe('MISS');
    const expired = await call({ method: 'GET', url: 'secrets/erp-expired/metadata', as: erp });
    expect(expired.headers.get('x-secret-validity')).toBe('expired');
    expectConformance('/secrets/{name}/metadata', 'GET', expired);
  });

  it('a batch answers each item as the document says, errors with their codes', async () => {
    const answer = await call({
      method: 'POST',
      url: 'secrets/resolve',
      as: erp,
      body: batch(['erp-token', 'erp-admin-password', 'bad name!']),
    });
    expect((answer.json?.secrets as Record<string, any>[]).map((i) => i.error?.code ?? i.name)).toEqual([
      'erp-token',
      'Forbidden',
      'InvalidSecretName',
    ]);
    expectConformance('/secrets/resolve', 'POST', answer);
  });

  it('the health report: 503 before the first run, then 200 while healthy and 503 once failed', async () => {
    const ops = { method: 'GET' as const, url: 'health', as: { key: OPS_KEY } };
    const none = await call(ops);
    expect(none.status).toBe(503);
    expect(none.json).toEqual({ status: 'unknown', startedAt: null, durationMs: 0, vaults: [], detail: expect.any(String) });
    expectConformance('/health', 'GET', none);

    await runHealthCheck();
    const healthy = await call(ops);
    expect(healthy.status).toBe(200);
    expect(healthy.json?.status).not.toBe('failed');
    expectConformance('/health', 'GET', healthy);

    azure.keyVault.setFault({ kind: 'firewall' });
    await runHealthCheck();
    azure.keyVault.clearFaults();
    const failed = await call(ops);
    expect(failed.status).toBe(503);
    expect(failed.json?.status).toBe('failed');
    expect((failed.json?.vaults as { checks: { cause: string | null }[] }[]).flatMap((v) => v.checks.map((c) => c.cause))).toContain(
      'ForbiddenByFirewall',
    );
    expectConformance('/health', 'GET', failed);
  });

  // enabled once the rate limit lands
  it('a caller past its rateLimit gets 429 TooManyRequests with Retry-After, on every route', async () => {
    const limited = { method: 'GET' as const, url: 'secrets/erp-token', as: { key: LIMITED_KEY } };
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await call(limited));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429]);
    const refused = answers[2]!;
    expect(refused.json).toMatchObject({ status: 429, code: 'TooManyRequests' });
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expectConformance('/secrets/{name}', 'GET', refused);
    for (const [documentPath, method, url] of [
      ['/secrets/resolve', 'POST', 'secrets/resolve'],
      ['/health', 'GET', 'health'],
      ['/secrets', 'GET', 'secrets'],
      ['/secrets/{name}/metadata', 'GET', 'secrets/erp-token/metadata'],
      ['/secrets/{name}/adoption', 'GET', 'secrets/erp-token/adoption'],
      ['/secrets/{name}/rotate', 'POST', 'secrets/erp-token/rotate'],
    ] as const) {
      const answer = await call({
        method,
        url,
        as: { key: LIMITED_KEY },
        body: method === 'POST' ? '{"secrets":["erp-token"]}' : undefined,
      });
      expect([url, answer.status, answer.json?.code]).toEqual([url, 429, 'TooManyRequests']);
      expectConformance(documentPath, method, answer);
    }
  });

  it('produced every documented status of every route but the unreachable ones', () => {
    const documented = Object.entries(openApiDocument.paths).flatMap(([documentPath, item]) =>
      Object.entries(item).flatMap(([method, operation]) =>
        Object.keys(operation.responses).map((status) => `${method.toUpperCase()} ${documentPath} ${status}`),
      ),
    );
    const unreached = documented.filter((answer) => !produced.has(answer));
    // 500 is an unexpected error.
    const unreachable = [
      ...Object.entries(openApiDocument.paths).flatMap(([documentPath, item]) =>
        Object.keys(item).map((method) => `${method.toUpperCase()} ${documentPath} 500`),
      ),
    ];
    expect(unreached.filter((answer) => !unreachable.includes(answer))).toEqual([]);
  });
});
