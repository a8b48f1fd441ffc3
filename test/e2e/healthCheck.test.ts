/**
 * End to end: the scheduled health check through the local host, run on demand with
 * POST /admin/functions/healthCheck as with `func`. The Key Vault emulator's firewall / RBAC /
 * access-policy switches and the ARM emulator's vault settings and role assignments break each
 * check in turn; a consumer subscribed to health events must hear of each change once.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KEY_VAULT_CRYPTO_USER, KEY_VAULT_READER, KEY_VAULT_SECRETS_USER } from '../../local/emulators/armEmulator';
import { startAzurite } from '../../local/emulators/azurite';
import { createDevCertificate } from '../../local/emulators/devCertificate';
import { startIngestionEndpoint } from '../../local/emulators/ingestionEndpoint';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { newSigningSecret, startWebhookReceiver } from '../../local/emulators/webhookReceiver';
import type { WebhookReceiver } from '../../local/emulators/webhookReceiver';
import type { HealthReport } from '../../shared/health/healthReport';
import { startBrokerHost } from '../support/brokerHost';
import type { BrokerHost } from '../support/brokerHost';

const OPS_KEY = 'ops-health-key';
const APP_KEY = 'app-health-key';
const MAIN = 'health-vault';
const OTHER = 'other-vault';
const CUSTOMER_INSIGHTS = '0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff';
const CI_TARGET = `Customer Insights (${CUSTOMER_INSIGHTS})`;
/** Customer Insights' documented RBAC grant: read on keys, secrets and certificates. */
const grantCustomerInsights = (): void => {
  azure.arm.addRoleAssignment(MAIN, CUSTOMER_INSIGHTS, KEY_VAULT_READER);
  azure.arm.addRoleAssignment(MAIN, CUSTOMER_INSIGHTS, KEY_VAULT_SECRETS_USER);
};
const sha = (key: string): string => createHash('sha256').update(key).digest('hex');
const inDays = (days: number): Date => new Date(Date.now() + days * 86_400_000);

let azure: LocalAzure;
let azurite: Awaited<ReturnType<typeof startAzurite>>;
let ingestion: Awaited<ReturnType<typeof startIngestionEndpoint>>;
let ops: WebhookReceiver;
let host: BrokerHost;

async function runCheck(): Promise<HealthReport> {
  const res = await fetch(`${host.url}/admin/functions/healthCheck`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"input":null}',
  });
  expect(res.status).toBe(202);
  return (await health(OPS_KEY)).json as HealthReport;
}

async function health(key: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${host.url}/api/health`, { headers: { 'x-api-key': key } });
  return { status: res.status, json: await res.json() };
}

function vaultOf(report: HealthReport, alias: string) {
  const vault = report.vaults.find((v) => v.vault === alias);
  if (!vault) throw new Error(`no ${alias} in the report`);
  return vault;
}

function failing(report: HealthReport, alias: string): string[] {
  return vaultOf(report, alias)
    .checks.filter((c) => c.status === 'failed')
    .map((c) => `${c.check}:${c.target ?? ''}:${c.cause ?? ''}`);
}

function healthNotifications(): { type: string; subject: string; data: { status: string; checks: { cause: string }[] } }[] {
  return ops.verifiedEvents() as never;
}

beforeAll(async () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-health-'));
  [azure, azurite] = await Promise.all([
    startLocalAzure({ stateDir, vaults: [MAIN, OTHER] }),
    startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } }),
  ]);
  ingestion = await startIngestionEndpoint({ certificate: await createDevCertificate(stateDir) });
  const signingSecret = newSigningSecret();
  ops = await startWebhookReceiver({ signingSecret });
  const kv = azure.keyVault;
  kv.setSecret(MAIN, 'whsec-ops', signingSecret, { expiresOn: inDays(365) });
  kv.setSecret(MAIN, 'erp-token', 'v1', { expiresOn: inDays(365) });
  kv.setSecret(MAIN, 'erp-cert', 'v1', { expiresOn: inDays(365) });
  kv.setSecret(OTHER, 'sftp-password', 'v1', { expiresOn: inDays(365) });
  azure.arm.setVault(MAIN, { enablePurgeProtection: true, enableRbacAuthorization: true });
  grantCustomerInsights();
  host = await startBrokerHost({
    ...azure.env,
    KEY_VAULT_URI: kv.vaultUri(MAIN),
    KEY_VAULT_ALIASES: `other=${kv.vaultUri(OTHER)}`,
    // Only the main vault's resource id: the other vault's management checks are skipped.
    KEY_VAULT_RESOURCE_IDS: kv.resourceId(MAIN),
    VAULT_EXPECTATIONS: JSON.stringify({
      // The ready Customer Insights expectation of docs/operations.md, in the emulator's region written the portal's way.
      default: {
        firewall: 'off',
        location: 'West Europe',
        readers: [{ name: 'Customer Insights', principalId: CUSTOMER_INSIGHTS, permissions: ['secrets', 'keys', 'certificates'] }],
      },
    }),
    ACCESS_POLICY: JSON.stringify({
      callers: [
        {
          name: 'ops',
          identities: [{ apiKeySha256: sha(OPS_KEY) }],
          allow: ['erp-token', 'erp-cert', 'other/sftp-password'],
          operator: true,
        },
        { name: 'app', identities: [{ apiKeySha256: sha(APP_KEY) }], allow: ['erp-*'] },
      ],
    }),
    CONSUMERS: JSON.stringify([
      { name: 'ops', secrets: [], events: ['HealthCheckFailed', 'HealthCheckRecovered'], webhook: ops.url, signingSecret: 'whsec-ops' },
    ]),
    AzureWebJobsStorage: azurite.connectionString,
    // Far away: these tests run the check on demand.
    HEALTH_CHECK_SCHEDULE: '0 0 0 1 1 *',
    APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString,
    APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
  });
});

afterAll(async () => {
  await host?.stop();
  await Promise.all([ops?.stop(), ingestion?.stop(), azure?.stop()]);
  await azurite?.stop();
});

describe('a healthy set of vaults', () => {
  let report: HealthReport;
  beforeAll(async () => {
    report = await runCheck();
  });

  it('reports every check ok, with management checks skipped where no resource id is set', () => {
    expect(report.status).toBe('ok');
    expect(failing(report, 'default')).toEqual([]);
    const main = vaultOf(report, 'default');
    expect(main.checks.map((c) => `${c.check}:${c.status}`)).toEqual(
      expect.arrayContaining([
        'listSecrets:ok',
        'getSecret:ok',
        'expiry:ok',
        'firewall:ok',
        'publicNetworkAccess:ok',
        'softDelete:ok',
        'purgeProtection:ok',
        'reader:ok',
        'location:ok',
      ]),
    );
    expect(main.checks.filter((c) => c.check === 'getSecret').map((c) => c.target)).toEqual(['erp-cert', 'erp-token', 'whsec-ops']);
    const other = vaultOf(report, 'other');
    expect(other.checks.filter((c) => c.check === 'firewall' || c.check === 'softDelete').map((c) => c.status)).toEqual([
      'skipped',
      'skipped',
    ]);
    expect(other.status).toBe('ok');
  });

  it('serves the report to operators with 200, refuses other callers', async () => {
    expect((await health(OPS_KEY)).status).toBe(200);
    expect((await health(APP_KEY)).status).toBe(403);
    expect((await fetch(`${host.url}/api/health`)).status).toBe(401);
  });

  it('notifies nobody when nothing changed', () => {
    expect(healthNotifications()).toHaveLength(0);
  });
});

describe('the firewall switched on', () => {
  it('reports the cause and the remedy, answers 503, and notifies once', async () => {
    azure.keyVault.setFault({ kind: 'firewall' }, MAIN);
    azure.arm.setVault(MAIN, { networkDefaultAction: 'Deny' });
    const report = await runCheck();
    expect(report.status).toBe('failed');
    const list = vaultOf(report, 'default').checks.find((c) => c.check === 'listSecrets')!;
    expect(list).toMatchObject({ status: 'failed', cause: 'ForbiddenByFirewall', remedy: expect.stringContaining('firewall') });
    expect(failing(report, 'default')).toEqual(
      expect.arrayContaining([expect.stringMatching(/^firewall:.*:FirewallNotAsExpected$/), 'getSecret:erp-token:ForbiddenByFirewall']),
    );
    expect((await health(OPS_KEY)).status).toBe(503);
    const notes = healthNotifications();
    expect(notes.map((n) => [n.type, n.subject])).toEqual([['secretbroker.health.failed', 'default']]);
    expect(notes[0]!.data.checks.map((c) => c.cause)).toContain('ForbiddenByFirewall');
  });

  it('notifies nobody on the next failing run', async () => {
    expect((await runCheck()).status).toBe('failed');
    expect(healthNotifications()).toHaveLength(1);
  });

  it('sends one "recovered" notification once repaired', async () => {
    azure.keyVault.clearFaults();
    azure.arm.setVault(MAIN, { networkDefaultAction: 'Allow' });
    expect((await runCheck()).status).toBe('ok');
    expect(healthNotifications().map((n) => n.type)).toEqual(['secretbroker.health.failed', 'secretbroker.health.recovered']);
  });

  it('sent Application Insights a failed availability result for the vault', async () => {
    const results = () =>
      ingestion
        .items()
        .filter((i) => i.data.baseType === 'AvailabilityData')
        .map((i) => i.data.baseData as { name: string; success: boolean });
    // Telemetry is batched: wait for the host's next export rather than for a fixed time.
    const deadline = Date.now() + 20_000;
    while (!results().some((r) => r.name === 'Key Vault default' && !r.success) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    expect(results().some((r) => r.name === 'Key Vault default' && r.success === false)).toBe(true);
    expect(results().some((r) => r.name === 'Key Vault other' && r.success === true)).toBe(true);
  });
});

describe('each cause in turn', () => {
  afterEach(async () => {
    azure.keyVault.clearFaults();
    // Leave the vault healthy for the next case.
    await runCheck();
  });

  it.each([
    ['RBAC', () => azure.keyVault.setFault({ kind: 'rbac' }, MAIN), 'getSecret:erp-token:ForbiddenByRbac'],
    ['access policy', () => azure.keyVault.setFault({ kind: 'policy' }, MAIN), 'getSecret:erp-token:ForbiddenByPolicy'],
  ])('%s denial is classified with its cause', async (_label, breakIt, expected) => {
    breakIt();
    const report = await runCheck();
    expect(failing(report, 'default')).toContain(expected);
    expect(vaultOf(report, 'default').checks.find((c) => c.cause === expected.split(':')[2])?.remedy).toMatch(
      /Key Vault Secrets User|access policy/,
    );
  });

  it('a missing, a soft-deleted and a disabled secret are told apart', async () => {
    azure.keyVault.purgeSecret(MAIN, 'erp-token');
    azure.keyVault.deleteSecret(MAIN, 'erp-cert');
    const { version } = azure.keyVault.setSecret(OTHER, 'sftp-password', 'v2', { expiresOn: inDays(365) });
    azure.keyVault.updateSecret(OTHER, 'sftp-password', version, { enabled: false });
    const report = await runCheck();
    expect(failing(report, 'default')).toEqual(
      expect.arrayContaining(['getSecret:erp-token:SecretNotFound', 'getSecret:erp-cert:SecretSoftDeleted']),
    );
    expect(failing(report, 'other')).toEqual(['getSecret:sftp-password:SecretDisabled']);
    // Repair for the next cases.
    azure.keyVault.setSecret(MAIN, 'erp-token', 'v1', { expiresOn: inDays(365) });
    azure.keyVault.setSecret(MAIN, 'erp-cert', 'v1', { expiresOn: inDays(365) });
    azure.keyVault.setSecret(OTHER, 'sftp-password', 'v3', { expiresOn: inDays(365) });
  });

  it('a principal that lost its roles is reported with its name and every kind it can no longer read', async () => {
    azure.arm.removeRoleAssignments(MAIN, CUSTOMER_INSIGHTS);
    const report = await runCheck();
    expect(failing(report, 'default')).toEqual([`reader:${CI_TARGET}: secrets, keys, certificates:ReaderPermissionMissing`]);
    grantCustomerInsights();
  });

  it('a reader that can read secrets and keys but not certificates (RBAC) is reported naming certificates', async () => {
    azure.arm.removeRoleAssignments(MAIN, CUSTOMER_INSIGHTS);
    azure.arm.addRoleAssignment(MAIN, CUSTOMER_INSIGHTS, KEY_VAULT_SECRETS_USER);
    azure.arm.addRoleAssignment(MAIN, CUSTOMER_INSIGHTS, KEY_VAULT_CRYPTO_USER);
    const report = await runCheck();
    expect(failing(report, 'default')).toEqual([`reader:${CI_TARGET}: certificates:ReaderPermissionMissing`]);
    expect(vaultOf(report, 'default').checks.find((c) => c.check === 'reader')?.remedy).toContain(
      '"Key Vault Reader" for keys and certificates',
    );
    azure.arm.removeRoleAssignments(MAIN, CUSTOMER_INSIGHTS);
    grantCustomerInsights();
  });

  it('a reader without certificate Get and List in an access-policy vault is reported naming certificates', async () => {
    azure.arm.setVault(MAIN, {
      enableRbacAuthorization: false,
      accessPolicies: [{ objectId: CUSTOMER_INSIGHTS, secrets: ['Get', 'List'], keys: ['Get', 'List'], certificates: ['Get'] }],
    });
    const report = await runCheck();
    expect(failing(report, 'default')).toEqual([`reader:${CI_TARGET}: certificates:ReaderPermissionMissing`]);
    azure.arm.setVault(MAIN, {
      accessPolicies: [{ objectId: CUSTOMER_INSIGHTS, secrets: ['Get', 'List'], keys: ['Get', 'List'], certificates: ['Get', 'List'] }],
    });
    expect(failing(await runCheck(), 'default')).toEqual([]);
    azure.arm.setVault(MAIN, { enableRbacAuthorization: true, accessPolicies: [] });
  });

  it('a vault in another region than the expectation fails the location check with its remedy', async () => {
    azure.arm.setVault(MAIN, { location: 'northeurope' });
    const report = await runCheck();
    expect(failing(report, 'default')).toEqual(['location:expected West Europe, is northeurope:LocationNotAsExpected']);
    expect(vaultOf(report, 'default').checks.find((c) => c.check === 'location')?.remedy).toBe(
      'Vault default is not in the region VAULT_EXPECTATIONS names (expected West Europe, is northeurope): services such as Customer Insights need their vault in their own region; link a vault there, or change the expectation.',
    );
    azure.arm.setVault(MAIN, { location: 'westeurope' });
  });

  it('an expiring secret warns and an expired one fails', async () => {
    azure.keyVault.setSecret(MAIN, 'erp-token', 'v2', { expiresOn: inDays(10) });
    azure.keyVault.setSecret(MAIN, 'erp-cert', 'v2', { expiresOn: inDays(-1) });
    const report = await runCheck();
    const expiry = vaultOf(report, 'default').checks.filter((c) => c.check === 'expiry');
    expect(expiry.find((c) => c.target === 'erp-token')).toMatchObject({ status: 'warning', cause: 'ExpiresSoon' });
    expect(expiry.find((c) => c.target === 'erp-cert')).toMatchObject({ status: 'failed', cause: 'Expired' });
    azure.keyVault.setSecret(MAIN, 'erp-token', 'v3', { expiresOn: inDays(365) });
    azure.keyVault.setSecret(MAIN, 'erp-cert', 'v3', { expiresOn: inDays(365) });
  });

  it('a vault that hangs does not stall the others, and the run still ends', async () => {
    azure.keyVault.setFault({ kind: 'hang' }, OTHER);
    const report = await runCheck();
    expect(
      vaultOf(report, 'other')
        .checks.filter((c) => c.check === 'listSecrets' || c.check === 'getSecret')
        .map((c) => c.cause),
    ).toEqual(['Timeout', 'Timeout']);
    expect(vaultOf(report, 'default').status).toBe('ok');
  });
});
