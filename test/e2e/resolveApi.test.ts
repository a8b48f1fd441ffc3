/**
 * End to end: the local host process runs the real function set, which reaches the Key Vault
 * emulator with the real @azure/keyvault-secrets + DefaultAzureCredential (managed identity
 * endpoint, CONNECT proxy, self-signed CA) through standard settings only. Callers use API keys
 * and tokens from a local OIDC issuer; telemetry goes to a local ingestion endpoint.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDevCertificate } from '../../local/emulators/devCertificate';
import { startIngestionEndpoint } from '../../local/emulators/ingestionEndpoint';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { startOidcIssuer } from '../../local/emulators/oidcIssuer';
import { runBrokerHostToExit, startBrokerHost } from '../support/brokerHost';
import type { BrokerHost } from '../support/brokerHost';

const sha = (key: string): string => createHash('sha256').update(key).digest('hex');
const ERP_APP = '11111111-1111-1111-1111-111111111111';
const STRANGER_APP = '99999999-9999-9999-9999-999999999999';
const AUDIENCE = 'api://secret-broker';
const ERP_KEY = `erp-${randomBytes(8).toString('hex')}`;
const OPS_KEY = `ops-${randomBytes(8).toString('hex')}`;
/** A value that must never show up in logs, telemetry or error bodies. */
const CANARY = `canary-${randomBytes(16).toString('hex')}`;

const policy = {
  callers: [
    {
      name: 'erp-integration',
      identities: [{ appId: ERP_APP }, { apiKeySha256: sha(ERP_KEY) }],
      allow: ['erp-*', 'partner/sftp-password'],
      deny: ['erp-admin-*'],
    },
    { name: 'ops', identities: [{ apiKeySha256: sha(OPS_KEY) }], allow: [], operator: true },
  ],
};

let azure: LocalAzure;
let issuer: Awaited<ReturnType<typeof startOidcIssuer>>;
let ingestion: Awaited<ReturnType<typeof startIngestionEndpoint>>;
let host: BrokerHost;
/** The running host's settings. */
let hostEnv: Record<string, string>;
let versions: Record<string, string>;

async function call(pathAndQuery: string, init: RequestInit & { key?: string; token?: string } = {}, on: BrokerHost = host) {
  const headers = new Headers(init.headers);
  if (init.key !== undefined) headers.set('x-api-key', init.key);
  if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`);
  const response = await fetch(`${on.url}/api/${pathAndQuery}`, { ...init, headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

beforeAll(async () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-e2e-'));
  [azure, issuer] = await Promise.all([startLocalAzure({ stateDir, vaults: ['contoso-vault2', 'partner-vault'] }), startOidcIssuer()]);
  // The ingestion endpoint shares the emulators' certificate (the exporter only speaks HTTPS) and, as
  // a deployed component with local authentication off, takes only the app identity's Entra token.
  ingestion = await startIngestionEndpoint({
    certificate: await createDevCertificate(stateDir),
    entraOnly: { tokenSecret: azure.tokenSecret },
  });
  const kv = azure.keyVault;
  versions = {
    first: kv.setSecret('contoso-vault2', 'erp-token', 'first-value').version,
    latest: kv.setSecret('contoso-vault2', 'erp-token', CANARY, { contentType: 'text/plain' }).version,
    admin: kv.setSecret('contoso-vault2', 'erp-admin-password', 'admin-value').version,
    disabled: kv.setSecret('contoso-vault2', 'erp-disabled', 'disabled-value', { enabled: false }).version,
    expired: kv.setSecret('contoso-vault2', 'erp-expired', 'expired-value', { expiresOn: new Date(Date.now() - 86_400_000) }).version,
    crm: kv.setSecret('contoso-vault2', 'crm-token', 'crm-value').version,
    sftp: kv.setSecret('partner-vault', 'sftp-password', 'sftp-value').version,
  };
  hostEnv = {
    ...azure.env,
    KEY_VAULT_URI: azure.keyVault.vaultUri('contoso-vault2'),
    KEY_VAULT_ALIASES: `partner=${azure.keyVault.vaultUri('partner-vault')}`,
    ACCESS_POLICY: JSON.stringify(policy),
    AUTH_ISSUER: issuer.issuer,
    AUTH_AUDIENCE: AUDIENCE,
    APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString,
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD',
    APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
  };
  host = await startBrokerHost(hostEnv);
});

afterAll(async () => {
  await host?.stop();
  await Promise.all([azure?.stop(), issuer?.stop(), ingestion?.stop()]);
});

describe('resolve one secret', () => {
  it('answers the latest version for an API key, uncached and private', async () => {
    const res = await call('secrets/erp-token', { key: ERP_KEY });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      name: 'erp-token',
      vault: 'default',
      version: versions.latest,
      value: CANARY,
      contentType: 'text/plain',
      enabled: true,
      notBefore: null,
      expiresOn: null,
      updatedOn: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(Object.keys(res.json!)).toEqual([
      'name',
      'vault',
      'version',
      'value',
      'contentType',
      'enabled',
      'notBefore',
      'expiresOn',
      'updatedOn',
    ]);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('etag')).toBe(`"${versions.latest}"`);
  });

  it('answers a pinned version and a secret of an aliased vault', async () => {
    const pinned = await call(`secrets/erp-token?version=${versions.first}`, { key: ERP_KEY });
    expect(pinned.status).toBe(200);
    expect(pinned.json).toMatchObject({ value: 'first-value', version: versions.first });
    const partner = await call('secrets/sftp-password?vault=partner', { key: ERP_KEY });
    expect(partner.status).toBe(200);
    expect(partner.json).toMatchObject({ name: 'sftp-password', vault: 'partner', value: 'sftp-value' });
  });

  it('answers for an Entra ID token of a known application', async () => {
    const token = await issuer.issueToken({ appId: ERP_APP, audience: AUDIENCE });
    const res = await call('secrets/erp-token', { token });
    expect(res.status).toBe(200);
    expect(res.json?.value).toBe(CANARY);
    const v1 = await issuer.issueToken({ appId: ERP_APP, audience: AUDIENCE, claimName: 'appid' });
    expect((await call('secrets/erp-token', { token: v1 })).status).toBe(200);
  });

  it.each([
    ['no credential', {}, 'Authenticate with'],
    ['a wrong API key', { key: 'nope' }, 'The API key is not valid'],
  ])('refuses %s with 401 and a challenge', async (_label, cred, detail) => {
    const res = await call('secrets/erp-token', cred);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('www-authenticate')).toContain('Bearer');
    expect(res.json).toMatchObject({ status: 401, code: 'Unauthenticated', detail: expect.stringContaining(detail) });
  });

  it('refuses expired, not-yet-valid, forged and wrong-audience tokens with 401', async () => {
    const cases = await Promise.all([
      issuer.issueToken({ appId: ERP_APP, audience: AUDIENCE, expiresInSeconds: -600 }),
      issuer.issueToken({ appId: ERP_APP, audience: AUDIENCE, notBeforeSeconds: 600 }),
      issuer.forgeToken({ appId: ERP_APP, audience: AUDIENCE }),
      issuer.issueToken({ appId: ERP_APP, audience: 'api://someone-else' }),
    ]);
    const answers = await Promise.all(cases.map((token) => call('secrets/erp-token', { token })));
    expect(answers.map((a) => [a.status, a.json?.code])).toEqual(Array(4).fill([401, 'Unauthenticated']));
    expect(answers[0]?.json?.detail).toContain('expired');
    expect(answers[3]?.json?.detail).toContain('aud');
  });

  it('refuses a valid token of an application not in the policy with 403', async () => {
    const token = await issuer.issueToken({ appId: STRANGER_APP, audience: AUDIENCE });
    const res = await call('secrets/erp-token', { token });
    expect(res.status).toBe(403);
    expect(res.json?.code).toBe('Forbidden');
  });

  it('answers 403 for a name the caller may not read, whether or not it exists', async () => {
    const existing = await call('secrets/erp-admin-password', { key: ERP_KEY });
    const missing = await call('secrets/erp-admin-nothing', { key: ERP_KEY });
    const other = await call('secrets/crm-token', { key: ERP_KEY });
    for (const res of [existing, missing, other]) {
      expect(res.status).toBe(403);
      expect(res.json?.code).toBe('Forbidden');
    }
    expect(existing.json?.detail.replace('password', 'X')).toBe(missing.json?.detail.replace('nothing', 'X'));
  });

  it.each([
    ['secrets/erp-nothing-here', 404, 'SecretNotFound'],
    ['secrets/erp-disabled', 409, 'SecretDisabled'],
    ['secrets/erp_bad!name', 400, 'InvalidSecretName'],
    ['secrets/erp-token?version=xyz', 400, 'InvalidVersion'],
    ['secrets/erp-token?vault=nowhere', 403, 'Forbidden'],
  ])('%s answers %i %s as problem+json', async (route, status, code) => {
    const res = await call(route, { key: ERP_KEY });
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.json).toMatchObject({ status, code, type: expect.stringContaining(code) });
  });

  it('serves an expired secret, as Key Vault does, and says so in a header', async () => {
    const res = await call('secrets/erp-expired', { key: ERP_KEY });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-secret-validity')).toBe('expired');
    expect(res.json?.expiresOn).not.toBeNull();
  });
});

describe('metadata, list and batch', () => {
  it('metadata has everything but the value', async () => {
    const res = await call('secrets/erp-token/metadata', { key: ERP_KEY });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ name: 'erp-token', vault: 'default', version: versions.latest, enabled: true });
    expect(res.json).not.toHaveProperty('value');
    expect(res.text).not.toContain(CANARY);
  });

  it('lists exactly the secrets the caller may read, across vaults, without values', async () => {
    const res = await call('secrets', { key: ERP_KEY });
    expect(res.status).toBe(200);
    const names = (res.json?.secrets as { name: string; vault: string }[]).map((s) => `${s.vault}/${s.name}`).sort();
    expect(names).toEqual(['default/erp-disabled', 'default/erp-expired', 'default/erp-token', 'partner/sftp-password']);
    expect(res.text).not.toContain(CANARY);
    expect(res.text).not.toContain('"value"');
  });

  it('resolves a batch item by item, in request order', async () => {
    const res = await call('secrets/resolve', {
      key: ERP_KEY,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        secrets: [
          'erp-token',
          { name: 'erp-token', version: versions.first },
          { name: 'sftp-password', vault: 'partner' },
          'erp-admin-password',
          'erp-missing',
          'bad name!',
          'erp-disabled',
        ],
      }),
    });
    expect(res.status).toBe(200);
    const items = res.json?.secrets as Record<string, any>[];
    expect(items.map((i) => i.value ?? i.error.code)).toEqual([
      CANARY,
      'first-value',
      'sftp-value',
      'Forbidden',
      'SecretNotFound',
      'InvalidSecretName',
      'SecretDisabled',
    ]);
    expect(items[3]).toEqual({
      name: 'erp-admin-password',
      vault: 'default',
      error: { status: 403, code: 'Forbidden', detail: expect.any(String) },
    });
    expect(items[4]?.error.status).toBe(404);
  });

  it.each([
    ['not JSON', '{secrets:', 400, 'InvalidRequest'],
    ['no list', '{"names":[]}', 400, 'InvalidRequest'],
    ['an item of the wrong type', '{"secrets":[42]}', 400, 'InvalidRequest'],
    ['101 secrets', JSON.stringify({ secrets: Array.from({ length: 101 }, (_, i) => `erp-${i}`) }), 413, 'TooManySecrets'],
  ])('refuses a batch with %s as a whole', async (_label, body, status, code) => {
    const res = await call('secrets/resolve', { key: ERP_KEY, method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(status);
    expect(res.json).toMatchObject({ status, code });
  });

  it('answers 405 with Allow: POST for any other method on the batch route, not a secret named "resolve"', async () => {
    for (const [method, url] of [
      ['GET', 'secrets/resolve'],
      ['GET', 'secrets/Resolve/'],
      ['PUT', 'secrets/resolve'],
      ['DELETE', 'secrets/resolve'],
    ] as const) {
      // Unauthenticated too: the method is wrong whoever asks.
      for (const key of [ERP_KEY, undefined]) {
        const res = await call(url, { method, ...(key ? { key } : {}) });
        expect([method, url, res.status]).toEqual([method, url, 405]);
        expect(res.headers.get('allow')).toBe('POST');
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(res.json).toMatchObject({ status: 405, code: 'MethodNotAllowed', detail: `${method} is not allowed here` });
      }
    }
  });

  it('refuses an unauthenticated batch with 401 before reading it', async () => {
    const res = await call('secrets/resolve', { method: 'POST', body: '{"secrets":["erp-token"]}' });
    expect(res.status).toBe(401);
  });

  it('serves the OpenAPI document anonymously', async () => {
    const res = await call('openapi.json');
    expect(res.status).toBe(200);
    expect(res.json?.openapi).toBe('3.1.0');
    expect(Object.keys(res.json?.paths)).toEqual(
      expect.arrayContaining(['/secrets/{name}', '/secrets/resolve', '/secrets/{name}/metadata', '/secrets']),
    );
  });
});

describe('cache', () => {
  it('asks the vault once for 200 concurrent cold requests for one secret', async () => {
    azure.keyVault.setSecret('contoso-vault2', 'erp-hot', 'hot-value');
    azure.keyVault.setFault({ kind: 'latency', ms: 200 });
    azure.keyVault.resetCounts();
    try {
      const answers = await Promise.all(Array.from({ length: 200 }, () => call('secrets/erp-hot', { key: ERP_KEY })));
      expect(answers.every((a) => a.status === 200 && a.json?.value === 'hot-value')).toBe(true);
      expect(azure.keyVault.requestCount({ method: 'GET', path: '/secrets/erp-hot' })).toBe(1);
      expect((await call('secrets/erp-hot', { key: ERP_KEY })).headers.get('x-cache')).toBe('HIT');
      expect(azure.keyVault.requestCount({ method: 'GET', path: '/secrets/erp-hot' })).toBe(1);
    } finally {
      azure.keyVault.clearFaults();
    }
  });
});

describe('vault failures (cache TTL 0, so every request asks the vault)', () => {
  let fresh: BrokerHost;
  beforeAll(async () => {
    fresh = await startBrokerHost({
      ...azure.env,
      KEY_VAULT_URI: azure.keyVault.vaultUri('contoso-vault2'),
      ACCESS_POLICY: JSON.stringify(policy),
      CACHE_TTL_SECONDS: '0',
    });
  });
  afterAll(async () => {
    azure.keyVault.clearFaults();
    await fresh?.stop();
  });
  afterEach(() => azure.keyVault.clearFaults());

  it.each([
    [{ kind: 'status', status: 503 } as const],
    [{ kind: 'status', status: 429, retryAfterSeconds: 1 } as const],
    [{ kind: 'reset' } as const],
  ])('serves the stale value while the vault fails with %j', async (fault) => {
    expect((await call('secrets/erp-token', { key: ERP_KEY }, fresh)).status).toBe(200);
    azure.keyVault.setFault(fault);
    const res = await call('secrets/erp-token', { key: ERP_KEY }, fresh);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('STALE');
    expect(res.json?.value).toBe(CANARY);
  });

  // A throttled or failing vault is waited out until the deadline (20 s); one that asks for a longer
  // wait than that is answered at once. Each case gets its own host: the vault's pause is per instance.
  it.each([
    [{ kind: 'status', status: 429, retryAfterSeconds: 60 } as const, 429, 'VaultThrottled'],
    [{ kind: 'status', status: 500, retryAfterSeconds: 60 } as const, 503, 'VaultUnavailable'],
  ])('maps %j on an uncached secret to %i %s at once, with Retry-After', async (fault, status, code) => {
    const own = await startBrokerHost({
      ...azure.env,
      KEY_VAULT_URI: azure.keyVault.vaultUri('contoso-vault2'),
      ACCESS_POLICY: JSON.stringify(policy),
      CACHE_TTL_SECONDS: '0',
    });
    try {
      const name = `erp-uncached-${randomBytes(4).toString('hex')}`;
      azure.keyVault.setSecret('contoso-vault2', name, 'x');
      azure.keyVault.setFault(fault);
      const res = await call(`secrets/${name}`, { key: ERP_KEY }, own);
      expect(res.status).toBe(status);
      expect(res.json).toMatchObject({ status, code });
      expect(res.headers.get('retry-after')).toBe('60');
    } finally {
      azure.keyVault.clearFaults();
      await own.stop();
    }
  });

  it.each([
    [{ kind: 'firewall' } as const, 503, 'VaultForbiddenByFirewall'],
    [{ kind: 'rbac' } as const, 503, 'VaultAccessDenied'],
    [{ kind: 'policy' } as const, 503, 'VaultAccessDenied'],
    [{ kind: 'reset' } as const, 503, 'VaultUnavailable'],
  ])('maps %j on an uncached secret to %i %s', async (fault, status, code) => {
    const name = `erp-uncached-${randomBytes(4).toString('hex')}`;
    azure.keyVault.setSecret('contoso-vault2', name, 'x');
    azure.keyVault.setFault(fault);
    const res = await call(`secrets/${name}`, { key: ERP_KEY }, fresh);
    expect(res.status).toBe(status);
    expect(res.json).toMatchObject({ status, code });
  });

  it('does not bridge a vault that now says the secret is disabled', async () => {
    const name = `erp-soon-disabled-${randomBytes(4).toString('hex')}`;
    const { version } = azure.keyVault.setSecret('contoso-vault2', name, 'x');
    expect((await call(`secrets/${name}`, { key: ERP_KEY }, fresh)).status).toBe(200);
    azure.keyVault.updateSecret('contoso-vault2', name, version, { enabled: false });
    expect((await call(`secrets/${name}`, { key: ERP_KEY }, fresh)).json?.code).toBe('SecretDisabled');
  });
});

describe('start-up and identity', () => {
  it('stops start-up with one line naming a bad setting', async () => {
    const { code, output } = await runBrokerHostToExit({
      ...azure.env,
      ACCESS_POLICY: '{"callers":[{"name":"x","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}],"allow":"erp-*"}]}',
    });
    expect(code).toBe(1);
    expect(output.trim()).toBe('ACCESS_POLICY: callers[0].allow must be a list of strings');
  });

  it('stops start-up with one line naming the port and FUNCTIONS_PORT when the port is in use', async () => {
    const busyPort = new URL(host.url).port;
    const { code, output } = await runBrokerHostToExit({ ...hostEnv, FUNCTIONS_PORT: busyPort }, []);
    expect(code).toBe(1);
    expect(output).toBe(`Port ${busyPort} is in use: stop what holds it, or set FUNCTIONS_PORT=<another port>\n`);
  });

  it('answers 503 VaultUnavailable when the managed identity gives no token', async () => {
    azure.identity.setFailure({ status: 400 });
    const noToken = await startBrokerHost({
      ...azure.env,
      KEY_VAULT_URI: azure.keyVault.vaultUri('contoso-vault2'),
      ACCESS_POLICY: JSON.stringify(policy),
    });
    try {
      const res = await call('secrets/erp-token', { key: ERP_KEY }, noToken);
      expect(res.status).toBe(503);
      expect(res.json).toMatchObject({ code: 'VaultUnavailable', detail: expect.stringContaining('No access token') });
      expect(res.text).not.toContain(CANARY);
    } finally {
      azure.identity.setFailure(null);
      await noToken.stop();
    }
  });
});

describe('no value leaks', () => {
  it('a secret value resolved many times appears in no log line, error body or telemetry item', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 20; i++) {
      expect((await call('secrets/erp-token', { key: ERP_KEY })).json?.value).toBe(CANARY);
      bodies.push((await call('secrets/erp-admin-password', { key: ERP_KEY })).text);
      bodies.push((await call('secrets/erp-token', { key: 'wrong' })).text);
    }
    await host.stop(); // flushes telemetry
    expect(ingestion.items().length).toBeGreaterThan(0);
    // Every item went in with the app identity's token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING): none was refused.
    expect(ingestion.refusedItems()).toBe(0);
    const kinds = new Set(ingestion.items().map((i) => i.data.baseType));
    expect([...kinds]).toEqual(expect.arrayContaining(['RequestData', 'RemoteDependencyData', 'EventData']));
    const events = ingestion.items().filter((i) => i.data.baseType === 'EventData');
    const audit = events
      .filter((e) => e.data.baseData.name === 'SecretAudit')
      .map((e) => e.data.baseData.properties as Record<string, string | undefined>);
    expect(audit).toContainEqual(expect.objectContaining({ operation: 'resolve', caller: 'erp-integration', outcome: 'allowed' }));
    expect(audit).toContainEqual(expect.objectContaining({ operation: 'resolve', secret: 'erp-admin-password', outcome: 'denied' }));
    const refused = audit.filter((a) => a.status === '401');
    expect(refused.length).toBeGreaterThanOrEqual(20);
    // Null fields (no caller: the credential was refused) are left out of the event.
    for (const record of refused) expect(record).toMatchObject({ code: 'Unauthenticated', outcome: 'denied' });
    for (const record of refused) expect(record.caller).toBeUndefined();
    for (const text of [host.output(), ...bodies, ...ingestion.raw()]) {
      expect(text).not.toContain(CANARY);
      expect(text).not.toContain(ERP_KEY);
    }
  });
});
