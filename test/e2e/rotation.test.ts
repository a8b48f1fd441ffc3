/**
 * End to end: rotation of Entra application client secrets through the local host process (the
 * real function set, the Key Vault, Graph and managed-identity emulators, Azurite). The rotation
 * identity (user-assigned, Graph `Application.ReadWrite.OwnedBy`, owner of the application, Key Vault
 * Secrets Officer) writes; the app's own identity only reads (Secrets User). Key Vault delivers its
 * events to host A's Event Grid endpoint, as a subscription would; consumers are local webhooks that
 * verify Standard Webhooks signatures.
 *
 * Host A retires once every caller moved and the new version is past the adoption settle time (a minute:
 * the Key Vault emulator's clock stamps that version a minute early, so no test waits for it), else at
 * ROTATION_RETIRE_AFTER_HOURS (default, 72); host B (its own storage, no cache) retires a few seconds
 * after the new version whoever still reads the old one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBroker } from '../../cli/broker';
import { startAzurite } from '../../local/emulators/azurite';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { EMULATOR_PRINCIPAL_ID } from '../../local/emulators/managedIdentityEndpoint';
import { newSigningSecret, startWebhookReceiver } from '../../local/emulators/webhookReceiver';
import type { WebhookReceiver } from '../../local/emulators/webhookReceiver';
import { createTableRotationStore } from '../../shared/rotation/tableRotationStore';
import { startBrokerHost } from '../support/brokerHost';
import { useLocalAzureInProcess } from '../support/inProcessAzure';
import type { BrokerHost } from '../support/brokerHost';

const VAULT = 'rotation-vault';
const ROTATOR = { clientId: '71111111-1111-4111-8111-111111111111', principalId: 'c7111111-1111-4111-8111-111111111111' };
const sha = (key: string): string => createHash('sha256').update(key).digest('hex');
const ERP_KEY = `erp-${randomBytes(8).toString('hex')}`;
const CRM_KEY = `crm-${randomBytes(8).toString('hex')}`;
const OPS_KEY = `ops-${randomBytes(8).toString('hex')}`;
const DAY = 86_400_000;

const policy = {
  callers: [
    { name: 'erp-app', identities: [{ apiKeySha256: sha(ERP_KEY) }], allow: ['erp-*', 'plain-*'] },
    { name: 'crm-app', identities: [{ apiKeySha256: sha(CRM_KEY) }], allow: ['erp-*'] },
    { name: 'ops', identities: [{ apiKeySha256: sha(OPS_KEY) }], allow: [], operator: true },
  ],
};

let azure: LocalAzure;
let storageA: Awaited<ReturnType<typeof startAzurite>>;
let storageB: Awaited<ReturnType<typeof startAzurite>>;
let hostA: BrokerHost;
let hostB: BrokerHost;
let consumerA: WebhookReceiver;
let consumerB: WebhookReceiver;
let restoreInProcess: (() => void) | undefined;
/** Every secret text this file saw: none may appear in a log line, a notification or an answer. */
const secretTexts: string[] = [];

interface Answer {
  status: number;
  text: string;
  json: Record<string, any> | undefined;
}

async function call(host: BrokerHost, pathAndQuery: string, key?: string, method = 'GET'): Promise<Answer> {
  const headers = new Headers();
  if (key !== undefined) headers.set('x-api-key', key);
  const response = await fetch(`${host.url}/api/${pathAndQuery}`, { method, headers });
  const text = await response.text();
  return { status: response.status, text, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

const answers: string[] = [];
async function rotate(host: BrokerHost, name: string, key = OPS_KEY): Promise<Answer> {
  const answer = await call(host, `secrets/${name}/rotate`, key, 'POST');
  answers.push(answer.text);
  return answer;
}

async function resolve(host: BrokerHost, name: string, key: string, version?: string): Promise<Answer> {
  const answer = await call(host, `secrets/${name}${version ? `?version=${version}` : ''}`, key);
  if (typeof answer.json?.value === 'string') secretTexts.push(answer.json.value);
  return answer;
}

/** Runs the health check job once on a host (as the timer would) and answers its new report. */
async function runHealth(host: BrokerHost): Promise<Record<string, any>> {
  const before = (await call(host, 'health', OPS_KEY)).json?.startedAt as string | undefined;
  const run = await fetch(`${host.url}/admin/functions/healthCheck`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"input":null}',
  });
  expect(run.status).toBe(202);
  for (let i = 0; i < 300; i++) {
    const report = await call(host, 'health', OPS_KEY);
    if (report.json?.vaults?.length && report.json.startedAt !== before) {
      answers.push(report.text);
      return report.json;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no new health report');
}

function checksOf(report: Record<string, any>, check: string): Record<string, any>[] {
  return (report.vaults as { checks: Record<string, any>[] }[]).flatMap((v) => v.checks).filter((c) => c.check === check);
}

function eventsOf(receiver: WebhookReceiver, secret: string, type: string): Record<string, any>[] {
  return (receiver.verifiedEvents() as Record<string, any>[]).filter((e) => e.subject === `default/${secret}` && e.type === type);
}

/** The secrets this file rotates: the hosts' ROTATION_TARGETS, each with the application seedRotatable creates for it. */
const ROTATABLE = ['erp-client-secret', 'erp-fresh-secret', 'erp-partner-secret', 'erp-foreign-secret'];
/** A fixed application object id per secret, so ROTATION_TARGETS can name it before the application exists. */
function appObjectIdOf(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
const ROTATION_TARGETS = JSON.stringify(Object.fromEntries(ROTATABLE.map((name) => [name, appObjectIdOf(name)])));

/** An application owned by the rotation identity (unless `owned` is false), one password, and a tagged secret holding its text. */
function seedRotatable(name: string, opts: { owned?: boolean } = {}) {
  const app = azure.graph.createApplication({
    objectId: appObjectIdOf(name),
    displayName: `${name} app`,
    owners: opts.owned === false ? [] : [ROTATOR.principalId],
  });
  const old = azure.graph.seedPassword(app.objectId, { displayName: 'hand-made' });
  secretTexts.push(old.secretText);
  const { version } = azure.keyVault.setSecret(VAULT, name, old.secretText, {
    tags: { brokerRotation: 'entraApp', entraAppObjectId: app.objectId, validityDays: '90' },
    expiresOn: new Date(Date.now() + 20 * DAY),
  });
  return { app, version, oldKeyId: old.keyId };
}

/** Key Vault RBAC: the app reads, the rotation identity writes (`officer: false` takes its write away). */
function setVaultRoles(officer = true): void {
  azure.keyVault.setRoleAssignments(VAULT, [
    { principalId: EMULATOR_PRINCIPAL_ID, role: 'Key Vault Secrets User' },
    { principalId: ROTATOR.principalId, role: officer ? 'Key Vault Secrets Officer' : 'Key Vault Secrets User' },
  ]);
}

beforeAll(async () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-rotation-'));
  [azure, storageA, storageB] = await Promise.all([
    startLocalAzure({
      stateDir,
      vaults: [VAULT],
      userAssignedIdentities: [ROTATOR],
      graphRoles: [{ principalId: ROTATOR.principalId, roles: ['Application.ReadWrite.OwnedBy'] }],
    }),
    startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } }),
    startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } }),
  ]);
  setVaultRoles();
  // The SDK clients of this process (the rotation store read back, broker rotate) reach the emulators as the hosts do;
  // set before any is built (the pipeline reads NO_PROXY once).
  restoreInProcess = useLocalAzureInProcess(azure);
  const signing = { A: newSigningSecret(), B: newSigningSecret() };
  azure.keyVault.setSecret(VAULT, 'whsec-a', signing.A);
  azure.keyVault.setSecret(VAULT, 'whsec-b', signing.B);
  [consumerA, consumerB] = await Promise.all([
    startWebhookReceiver({ signingSecret: signing.A }),
    startWebhookReceiver({ signingSecret: signing.B }),
  ]);
  const consumer = (receiver: WebhookReceiver, signingSecret: string) =>
    JSON.stringify([
      { name: 'erp-consumer', secrets: ['erp-*'], events: ['SecretNewVersionCreated'], webhook: receiver.url, signingSecret },
    ]);
  const env = {
    ...azure.env,
    KEY_VAULT_URI: azure.keyVault.vaultUri(VAULT),
    ACCESS_POLICY: JSON.stringify(policy),
    ROTATION_IDENTITY_CLIENT_ID: ROTATOR.clientId,
    ROTATION_TARGETS,
    ADOPTION_WARNING_HOURS: '0',
  };
  [hostA, hostB] = await Promise.all([
    startBrokerHost({ ...env, AzureWebJobsStorage: storageA.connectionString, CONSUMERS: consumer(consumerA, 'whsec-a') }),
    startBrokerHost({
      ...env,
      AzureWebJobsStorage: storageB.connectionString,
      CONSUMERS: consumer(consumerB, 'whsec-b'),
      // About 4 s after the new version.
      ROTATION_RETIRE_AFTER_HOURS: '0.001',
      // Every read asks the vault: a pinned read of the retired version is refused at once.
      CACHE_TTL_SECONDS: '0',
    }),
  ]);
  azure.keyVault.setEventSubscription({
    endpoint: `${hostA.url}/runtime/webhooks/eventgrid?functionName=secretEvents`,
    schema: 'EventGridSchema',
    maxDeliveryAttempts: 12,
    retryDelayMs: 100,
  });
}, 120_000);

afterAll(async () => {
  restoreInProcess?.();
  await Promise.all([hostA?.stop(), hostB?.stop()]);
  await Promise.all([consumerA?.stop(), consumerB?.stop(), azure?.stop(), storageA?.stop(), storageB?.stop()]);
});

describe('a rotation on SecretNearExpiry, retired once every caller moved', () => {
  const name = 'erp-client-secret';
  let seeded: ReturnType<typeof seedRotatable>;
  let newVersion: string;

  beforeAll(() => {
    seeded = seedRotatable(name);
  });

  it('adds a password, stores it as a new version (exp = its end date) and notifies consumers once', async () => {
    for (const key of [ERP_KEY, CRM_KEY]) expect((await resolve(hostA, name, key)).json?.version).toBe(seeded.version);

    // The version the rotation writes is stamped 61 s ago: past ADOPTION_SETTLE_MS (60 s) when the health check runs.
    azure.keyVault.setClock(() => Date.now() - 61_000);
    const near = await azure.keyVault.emitSecretEvent(VAULT, name, 'SecretNearExpiry');
    expect(await azure.keyVault.whenDelivered(near)).toMatchObject({ status: 200 });
    await azure.keyVault.whenIdle();
    azure.keyVault.setClock(null);

    const passwords = azure.graph.passwordCredentials(seeded.app.objectId);
    expect(passwords).toHaveLength(2);
    const added = passwords.find((p) => p.keyId !== seeded.oldKeyId)!;
    expect(added.displayName).toMatch(/^secret-broker rot-/);
    const metadata = await call(hostA, `secrets/${name}/metadata`, ERP_KEY);
    newVersion = metadata.json?.version as string;
    expect(newVersion).not.toBe(seeded.version);
    expect(Date.parse(metadata.json?.expiresOn as string)).toBe(Date.parse(added.endDateTime));

    // Key Vault's own SecretNewVersionCreated for the version the rotation wrote reached the host too.
    const own = azure.keyVault
      .emittedEvents()
      .find((e) => e.eventType.endsWith('SecretNewVersionCreated') && e.subject === name && e.data.Version === newVersion);
    expect(own).toBeDefined();
    expect(await azure.keyVault.whenDelivered(own!.id)).toMatchObject({ status: 200 });
    // ... and delivered again, as Event Grid may: still one notification.
    expect(await azure.keyVault.redeliver(own!.id)).toMatchObject({ status: 200 });
    const rotated = eventsOf(consumerA, name, 'secretbroker.secret.rotated').filter((e) => e.data.version === newVersion);
    expect(rotated).toHaveLength(1);
    expect(rotated[0]?.data).toMatchObject({
      vault: 'default',
      secret: name,
      version: newVersion,
      sourceEventType: 'SecretBroker.Rotation',
    });
    expect(new Set(consumerA.received().map((r) => r.headers['webhook-id'])).size).toBe(consumerA.received().length);
    // The event refreshed the caches and left the notification to the rotation.
    expect(hostA.output()).toContain(
      `version ${newVersion} of default/${name} was written by its rotation, which notifies consumers of it`,
    );
  });

  it('answers POST /rotate 202 with the state and the callers holding retirement back; 401, 403, 404, 409 otherwise', async () => {
    const answer = await rotate(hostA, name);
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({
      outcome: 'resumed',
      vault: 'default',
      secret: name,
      reason: 'SecretNearExpiry',
      state: 'awaitingAdoption',
      oldVersion: seeded.version,
      newVersion,
      holders: ['crm-app', 'erp-app'],
      deadline: expect.any(String),
      failure: null,
    });
    expect(Object.keys(answer.json!)).not.toContain('newKeyId');

    expect((await rotate(hostA, name, '')).status).toBe(401);
    const refused = await rotate(hostA, name, ERP_KEY);
    expect([refused.status, refused.json?.code]).toEqual([403, 'Forbidden']);
    azure.keyVault.setSecret(VAULT, 'plain-secret', 'not-rotatable-value');
    const untagged = await rotate(hostA, 'plain-secret');
    expect([untagged.status, untagged.json?.code]).toEqual([409, 'SecretNotRotatable']);
    expect(untagged.json?.detail).toContain('brokerRotation');
    // Tagged by someone with write access to the vault for another team's application, but not in ROTATION_TARGETS: refused, nothing added.
    const passwordsBefore = azure.graph.passwordCredentials(seeded.app.objectId).length;
    azure.keyVault.setSecret(VAULT, 'attacker-secret', 'attacker-value', {
      tags: { brokerRotation: 'entraApp', entraAppObjectId: seeded.app.objectId },
    });
    const notTarget = await rotate(hostA, 'attacker-secret');
    expect([notTarget.status, notTarget.json?.code]).toEqual([409, 'SecretNotRotatable']);
    expect(notTarget.json?.detail).toContain('ROTATION_TARGETS');
    expect(azure.graph.passwordCredentials(seeded.app.objectId).length).toBe(passwordsBefore);
    // The same secret in another case is the same rotation (Key Vault names are case-insensitive).
    expect((await rotate(hostA, name.toUpperCase())).json).toMatchObject({ outcome: 'resumed', newVersion });
    expect((await rotate(hostA, 'erp-missing')).json).toMatchObject({ status: 404, code: 'SecretNotFound' });
    expect((await rotate(hostA, 'erp_bad')).json).toMatchObject({ status: 400, code: 'InvalidSecretName' });

    // Each request has its own audit record, operation `rotate`, naming the secret.
    const audit = (): Record<string, unknown>[] =>
      hostA
        .output()
        .split('\n')
        .filter((l) => l.includes('audit {'))
        .map((l) => JSON.parse(l.slice(l.indexOf('audit {') + 6)) as Record<string, unknown>)
        .filter((r) => r.operation === 'rotate');
    for (let i = 0; i < 50 && audit().length < 6; i++) await new Promise((r) => setTimeout(r, 100));
    expect(audit()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ caller: 'ops', secret: name, vault: 'default', status: 202, outcome: 'allowed' }),
        expect.objectContaining({ caller: 'erp-app', secret: name, status: 403, outcome: 'denied' }),
        expect.objectContaining({ caller: 'ops', secret: 'plain-secret', status: 409 }),
      ]),
    );
    expect((await call(hostA, `secrets/${name}/rotate?vault=nowhere`, OPS_KEY, 'POST')).json).toMatchObject({
      status: 400,
      code: 'InvalidRequest',
    });
  });

  it('serves the new version to both callers after the cache refresh', async () => {
    for (const key of [ERP_KEY, CRM_KEY]) expect((await resolve(hostA, name, key)).json?.version).toBe(newVersion);
  });

  it('removes the old password before it disables the old version, and reports a step that failed', async () => {
    // The rotation identity may not write now: the old password goes, the old version stays enabled.
    setVaultRoles(false);
    const report = await runHealth(hostA);
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.keyId)).not.toContain(seeded.oldKeyId);
    const [check] = checksOf(report, 'rotation');
    expect(check).toMatchObject({ target: name, status: 'failed', cause: 'RotationFailed' });
    expect(check?.remedy).toContain('step disableOldVersion');
    expect(check?.remedy).toContain('Key Vault answered');
    expect(check?.remedy).toContain('Key Vault Secrets Officer');
    expect(eventsOf(consumerA, name, 'secretbroker.secret.retired')).toHaveLength(0);
  });

  it('retires on the next run once mended: old version disabled, secretbroker.secret.retired delivered once', async () => {
    setVaultRoles();
    const report = await runHealth(hostA);
    expect(checksOf(report, 'rotation')).toEqual([]);
    // Host B has not cached that version (host A may serve it from its cache until CACHE_TTL_SECONDS).
    expect((await resolve(hostB, name, ERP_KEY, seeded.version)).json).toMatchObject({ status: 409, code: 'SecretDisabled' });
    expect(azure.graph.passwordCredentials(seeded.app.objectId)).toHaveLength(1);
    const retired = eventsOf(consumerA, name, 'secretbroker.secret.retired');
    expect(retired).toHaveLength(1);
    expect(retired[0]?.data).toMatchObject({ vault: 'default', secret: name, version: seeded.version });
    await runHealth(hostA);
    expect(eventsOf(consumerA, name, 'secretbroker.secret.retired')).toHaveLength(1);
    expect(eventsOf(consumerA, name, 'secretbroker.secret.rotated').filter((e) => e.data.version === newVersion)).toHaveLength(1);

    const [record] = await createTableRotationStore(storageA.connectionString).list('default', name);
    expect(record).toMatchObject({ state: 'retired', retireReason: 'adopted', oldPassword: 'removed' });
  });
});

describe('a health run within the adoption settle time', () => {
  const name = 'erp-fresh-secret';

  it('does not retire though no caller holds the old version: the new version is less than a minute old', async () => {
    const seeded = seedRotatable(name);
    const started = await rotate(hostA, name);
    expect(started.json).toMatchObject({ outcome: 'started', state: 'awaitingAdoption', holders: [] });
    await runHealth(hostA);
    expect((await rotate(hostA, name)).json).toMatchObject({
      outcome: 'resumed',
      state: 'awaitingAdoption',
      newVersion: started.json?.newVersion,
      holders: [],
    });
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.keyId)).toContain(seeded.oldKeyId);
    expect(eventsOf(consumerA, name, 'secretbroker.secret.retired')).toHaveLength(0);
  });
});

describe('a caller that never moves', () => {
  const name = 'erp-partner-secret';
  let seeded: ReturnType<typeof seedRotatable>;

  it('is warned about (StaleVersionInUse), then the old version retires at the deadline', async () => {
    seeded = seedRotatable(name);
    expect((await resolve(hostB, name, CRM_KEY)).status).toBe(200);
    const started = await rotate(hostB, name);
    expect(started.json).toMatchObject({ outcome: 'started', reason: 'manual', state: 'awaitingAdoption', holders: ['crm-app'] });
    // The CRM app pins the old version.
    expect((await resolve(hostB, name, CRM_KEY, seeded.version)).status).toBe(200);

    const first = await runHealth(hostB);
    expect(checksOf(first, 'adoption')).toContainEqual(
      expect.objectContaining({ target: name, status: 'warning', cause: 'StaleVersionInUse', remedy: expect.stringContaining('crm-app') }),
    );

    const deadline = Date.parse(started.json?.deadline as string);
    while (Date.now() <= deadline) await new Promise((r) => setTimeout(r, 250));
    await runHealth(hostB);
    expect((await resolve(hostB, name, CRM_KEY, seeded.version)).json).toMatchObject({ status: 409, code: 'SecretDisabled' });
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.keyId)).not.toContain(seeded.oldKeyId);
    expect(eventsOf(consumerB, name, 'secretbroker.secret.retired')).toHaveLength(1);
    const [record] = await createTableRotationStore(storageB.connectionString).list('default', name);
    expect(record).toMatchObject({ state: 'retired', retireReason: 'deadline', holders: ['crm-app'] });
  });
});

describe('without Graph permission on the application', () => {
  const name = 'erp-foreign-secret';

  it('fails RotationFailed naming Authorization_RequestDenied, with nothing half-done, and resumes once mended', async () => {
    const seeded = seedRotatable(name, { owned: false });
    const answer = await rotate(hostB, name);
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({
      state: 'failed',
      newVersion: null,
      failure: { step: 'newPassword', service: 'graph', code: 'Authorization_RequestDenied', status: 403 },
    });
    expect(azure.graph.passwordCredentials(seeded.app.objectId)).toHaveLength(1);
    expect((await call(hostB, `secrets/${name}/metadata`, ERP_KEY)).json?.version).toBe(seeded.version);

    const report = await runHealth(hostB);
    const [check] = checksOf(report, 'rotation');
    expect(check).toMatchObject({ target: name, status: 'failed', cause: 'RotationFailed' });
    expect(check?.remedy).toContain('Authorization_RequestDenied');
    expect(check?.remedy).toContain('Application.ReadWrite.OwnedBy');
    expect(azure.graph.passwordCredentials(seeded.app.objectId)).toHaveLength(1);
    expect(eventsOf(consumerB, name, 'secretbroker.secret.rotated')).toHaveLength(0);

    azure.graph.addOwner(seeded.app.objectId, ROTATOR.principalId);
    const resumed = await rotate(hostB, name);
    expect(resumed.json).toMatchObject({ outcome: 'resumed', failure: null });
    expect(resumed.json?.state).not.toBe('failed');
    expect(azure.graph.passwordCredentials(seeded.app.objectId)).toHaveLength(resumed.json?.state === 'retired' ? 1 : 2);
  });
});

describe('broker rotate', () => {
  it('says RotationNotEnabled without ROTATION_IDENTITY_CLIENT_ID, and prints the state of a rotation in a few lines', async () => {
    let stdout = '';
    let stderr = '';
    const io = { out: (t: string) => void (stdout += t), err: (t: string) => void (stderr += t) };
    const env = { KEY_VAULT_URI: azure.keyVault.vaultUri(VAULT), AzureWebJobsStorage: storageA.connectionString };
    expect(await runBroker(['rotate', 'erp-client-secret'], { ...env }, io)).toBe(1);
    expect(stderr).toBe('error: RotationNotEnabled: Rotation is off: ROTATION_IDENTITY_CLIENT_ID names no rotation identity.\n');
    expect(stdout).toBe('');

    stderr = '';
    {
      const withRotation = {
        ...env,
        AzureWebJobsStorage: storageB.connectionString,
        ROTATION_IDENTITY_CLIENT_ID: ROTATOR.clientId,
        ROTATION_TARGETS,
      };
      const code = await runBroker(['rotate', 'erp-foreign-secret'], withRotation, io);
      expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: expect.any(String), stderr: '' });
    }
    expect(stdout).toMatch(
      /^rotation rot-\S+ of default\/erp-foreign-secret: (started|resumed) \(manual\), state \w+\n {2}old version [0-9a-f]{32} -> new version [0-9a-f]{32}/,
    );
    answers.push(stdout, stderr);
  });
});

describe('secret texts', () => {
  it('appear in no log line of either host, no notification and no answer', () => {
    expect(secretTexts.length).toBeGreaterThanOrEqual(4);
    const notifications = [...consumerA.received(), ...consumerB.received()].map((r) => r.body).join('\n');
    const seen = [hostA.output(), hostB.output(), notifications, answers.join('\n')];
    for (const text of new Set(secretTexts)) for (const place of seen) expect(place).not.toContain(text);
  });
});
