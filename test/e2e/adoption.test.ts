/**
 * End to end: version adoption through the local host process (the real function set, the Key
 * Vault emulator, Azurite): reads of values are recorded per caller and version, metadata reads are
 * not; `GET /api/secrets/{name}/adoption` answers operators only, newest version first, next to the
 * `metadata` route and the batch route; the health check warns `StaleVersionInUse` naming the caller
 * still on the old version; and `broker adoption` prints the same rows from the table.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBroker } from '../../cli/broker';
import { startAzurite } from '../../local/emulators/azurite';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { startBrokerHost } from '../support/brokerHost';
import type { BrokerHost } from '../support/brokerHost';

const sha = (key: string): string => createHash('sha256').update(key).digest('hex');
const ERP_KEY = `erp-${randomBytes(8).toString('hex')}`;
const CRM_KEY = `crm-${randomBytes(8).toString('hex')}`;
const AUDITOR_KEY = `auditor-${randomBytes(8).toString('hex')}`;
const OPS_KEY = `ops-${randomBytes(8).toString('hex')}`;
const VAULT = 'contoso-vault2';
/** Values that must never show up in an adoption answer, the report or the host's output. */
const CANARY_OLD = `canary-old-${randomBytes(12).toString('hex')}`;
const CANARY_NEW = `canary-new-${randomBytes(12).toString('hex')}`;

const policy = {
  callers: [
    { name: 'erp-integration', identities: [{ apiKeySha256: sha(ERP_KEY) }], allow: ['erp-*', 'resolve'] },
    { name: 'crm/connector #1', identities: [{ apiKeySha256: sha(CRM_KEY) }], allow: ['erp-token'] },
    { name: 'auditor', identities: [{ apiKeySha256: sha(AUDITOR_KEY) }], allow: ['erp-*'] },
    { name: 'ops', identities: [{ apiKeySha256: sha(OPS_KEY) }], allow: [], operator: true },
  ],
};

let azure: LocalAzure;
let azurite: Awaited<ReturnType<typeof startAzurite>>;
let host: BrokerHost;
let v1: string;
let v2: string;

async function call(pathAndQuery: string, key?: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  if (key !== undefined) headers.set('x-api-key', key);
  const response = await fetch(`${host.url}/api/${pathAndQuery}`, { ...init, headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

beforeAll(async () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-adoption-'));
  [azure, azurite] = await Promise.all([
    startLocalAzure({ stateDir, vaults: [VAULT] }),
    startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } }),
  ]);
  v1 = azure.keyVault.setSecret(VAULT, 'erp-token', CANARY_OLD).version;
  azure.keyVault.setSecret(VAULT, 'resolve', 'a-secret-named-resolve');
  host = await startBrokerHost({
    ...azure.env,
    KEY_VAULT_URI: azure.keyVault.vaultUri(VAULT),
    ACCESS_POLICY: JSON.stringify(policy),
    AzureWebJobsStorage: azurite.connectionString,
    // Every read asks the vault, so the new version is read as soon as it exists.
    CACHE_TTL_SECONDS: '0',
    // About 2 s: the health check below warns once that has passed since the new version.
    ADOPTION_WARNING_HOURS: '0.0005',
  });
});

afterAll(async () => {
  await host?.stop();
  await Promise.all([azure?.stop(), azurite?.stop()]);
});

describe('version adoption', () => {
  it('is answered to operators only, empty before any read, 400 for a bad name or vault', async () => {
    expect((await call('secrets/erp-token/adoption')).status).toBe(401);
    const refused = await call('secrets/erp-token/adoption', ERP_KEY);
    expect([refused.status, refused.json?.code, refused.headers.get('content-type')]).toEqual([
      403,
      'Forbidden',
      'application/problem+json',
    ]);
    const empty = await call('secrets/erp-token/adoption', OPS_KEY);
    expect([empty.status, empty.json]).toEqual([200, { vault: 'default', secret: 'erp-token', versions: [] }]);
    expect((await call('secrets/erp_token/adoption', OPS_KEY)).json).toMatchObject({ status: 400, code: 'InvalidSecretName' });
    expect((await call('secrets/erp-token/adoption?vault=nowhere', OPS_KEY)).json).toMatchObject({ status: 400, code: 'InvalidRequest' });
  });

  it('records value reads (single and batch) per caller and version, not metadata reads, newest version first', async () => {
    expect((await call('secrets/erp-token', ERP_KEY)).json?.version).toBe(v1);
    expect((await call('secrets/erp-token', CRM_KEY)).status).toBe(200);
    expect((await call('secrets/erp-token/metadata', AUDITOR_KEY)).status).toBe(200);
    v2 = azure.keyVault.setSecret(VAULT, 'erp-token', CANARY_NEW).version;
    const batch = await call('secrets/resolve', ERP_KEY, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secrets: ['erp-token', 'erp-missing'] }),
    });
    expect(batch.json?.secrets.map((s: { version?: string }) => s.version)).toEqual([v2, undefined]);
    // The CRM connector pins the old version after the new one appeared.
    expect((await call(`secrets/erp-token?version=${v1}`, CRM_KEY)).status).toBe(200);

    const answer = await call('secrets/ERP-TOKEN/adoption', OPS_KEY);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    const time = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(answer.json).toEqual({
      vault: 'default',
      secret: 'erp-token',
      versions: [
        { version: v2, callers: [{ caller: 'erp-integration', since: time, lastRead: time }] },
        { version: v1, callers: [{ caller: 'crm/connector #1', since: time, lastRead: time }] },
      ],
    });
    expect(answer.text).not.toContain('canary');
  });

  it('serves the route beside metadata and the batch route, for a secret named "resolve" too', async () => {
    // GET secrets/resolve is the batch route's 405: the secret is read in a batch.
    const batch = await call('secrets/resolve', ERP_KEY, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secrets: ['resolve'] }),
    });
    expect(batch.json?.secrets[0]?.value).toBe('a-secret-named-resolve');
    expect((await call('secrets/resolve/adoption', OPS_KEY)).json).toEqual({
      vault: 'default',
      secret: 'resolve',
      versions: [{ version: expect.any(String), callers: [expect.objectContaining({ caller: 'erp-integration' })] }],
    });
    expect((await call('secrets/erp-token/metadata', ERP_KEY)).json?.version).toBe(v2);
    expect((await call('secrets/erp-token/adoption', OPS_KEY, { method: 'POST' })).status).toBe(405);
  });

  it('warns StaleVersionInUse in the health report, naming the caller still on the old version', async () => {
    // ADOPTION_WARNING_HOURS (about 2 s) must have passed since the new version.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const run = await fetch(`${host.url}/admin/functions/healthCheck`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"input":null}',
    });
    expect(run.status).toBe(202);
    let report: Record<string, any> | undefined;
    for (let i = 0; i < 100 && !report?.vaults; i++) {
      const res = await call('health', OPS_KEY);
      if (res.json?.vaults?.length) report = res.json;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const checks = (report?.vaults as { checks: Record<string, unknown>[] }[])
      .flatMap((v) => v.checks)
      .filter((c) => c.check === 'adoption');
    expect(checks).toEqual(
      expect.arrayContaining([
        {
          check: 'adoption',
          target: 'erp-token',
          status: 'warning',
          cause: 'StaleVersionInUse',
          remedy: expect.stringContaining(`Callers crm/connector #1 (version ${v1}) still read an older version of secret erp-token`),
          durationMs: expect.any(Number),
        },
        expect.objectContaining({ check: 'adoption', target: 'resolve', status: 'ok' }),
      ]),
    );
    expect(report?.status).toBe('warning');
    expect(JSON.stringify(report)).not.toContain('canary');
  });

  it('prints the same rows with broker adoption, read from the table', async () => {
    let stdout = '';
    let stderr = '';
    const code = await runBroker(
      ['adoption', 'erp-token'],
      { AzureWebJobsStorage: azurite.connectionString },
      {
        out: (t) => (stdout += t),
        err: (t) => (stderr += t),
      },
    );
    expect([code, stderr]).toEqual([0, '']);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('Adoption of secret erp-token in vault default: 2 callers, 2 versions (newest first)');
    expect(lines[2]).toMatch(/^version +caller +since +last read$/);
    expect(lines[3]).toMatch(new RegExp(`^${v2} +erp-integration +\\S+Z +\\S+Z$`));
    expect(lines[4]).toMatch(new RegExp(`^${v1} +crm/connector #1 +\\S+Z +\\S+Z$`));
  });

  it('writes what it holds when the host shuts down', async () => {
    expect((await call('secrets/erp-token', AUDITOR_KEY)).status).toBe(200);
    await host.stop();
    let stdout = '';
    const code = await runBroker(
      ['adoption', 'erp-token'],
      { AzureWebJobsStorage: azurite.connectionString },
      {
        out: (t) => (stdout += t),
        err: () => undefined,
      },
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^${v2} +auditor +`, 'm'));
  });

  it('never puts a value in the host output', () => {
    expect(host.output()).not.toContain('canary');
  });
});
