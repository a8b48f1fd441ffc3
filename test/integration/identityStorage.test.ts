/**
 * Identity-based storage against a real Azurite that serves HTTPS (the dev certificate) with
 * `--oauth basic`, so it takes bearer tokens and checks their issuer, audience and lifetime (not
 * their signature). The runtime reaches the coherence table, the delivery ledger, dead letters and
 * health reports through `AzureWebJobsStorage__tableServiceUri` alone, with the token its
 * `DefaultAzureCredential` gets from the emulated App Service managed-identity endpoint
 * (audience https://storage.azure.com).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { DefaultAzureCredential } from '@azure/identity';
import { startAzurite } from '../../local/emulators/azurite';
import type { Azurite } from '../../local/emulators/azurite';
import { createDevCertificate } from '../../local/emulators/devCertificate';
import { AZURE_STEERING_ENV_KEYS } from '../../local/emulators/inProcessAzure';
import { startManagedIdentityEndpoint } from '../../local/emulators/managedIdentityEndpoint';
import type { ManagedIdentityEndpoint } from '../../local/emulators/managedIdentityEndpoint';
import { loadConfig } from '../../shared/config';
import type { AppConfig } from '../../shared/config';
import { INVALIDATIONS_TABLE } from '../../shared/events/cacheCoherence';
import { DEAD_LETTERS_TABLE, DELIVERIES_TABLE } from '../../shared/notify/deliveryLedger';
import { createRuntime } from '../../shared/runtime';
import type { Runtime } from '../../shared/runtime';
import { createTableClient, tableErrorStatus } from '../../shared/storage/tableStorage';

let azurite: Azurite;
let identity: ManagedIdentityEndpoint;
let config: AppConfig;
let restore: () => void;
const runtimes: Runtime[] = [];

beforeAll(async () => {
  const certificate = await createDevCertificate(mkdtempSync(path.join(os.tmpdir(), 'idstorage-')));
  identity = await startManagedIdentityEndpoint({ tokenSecret: randomBytes(32) });
  azurite = await startAzurite({ inMemory: true, https: certificate, oauth: 'basic' });

  const savedCAs = tls.getCACertificates('default');
  tls.setDefaultCACertificates([...savedCAs, certificate.certPem]);
  const savedEnv = Object.fromEntries(AZURE_STEERING_ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of AZURE_STEERING_ENV_KEYS) delete process.env[k];
  process.env.IDENTITY_ENDPOINT = identity.endpoint;
  process.env.IDENTITY_HEADER = identity.header;
  restore = () => {
    tls.setDefaultCACertificates(savedCAs);
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };

  config = loadConfig({
    KEY_VAULT_URI: 'https://contoso-vault2.vault.azure.net',
    AzureWebJobsStorage__tableServiceUri: azurite.tableServiceUri,
    AzureWebJobsStorage__credential: 'managedidentity',
  });
});

afterAll(async () => {
  for (const runtime of runtimes) runtime.dispose();
  restore?.();
  await Promise.all([azurite?.stop(), identity?.stop()]);
});

/** A runtime as it runs in Azure: no credential given, so it builds its own DefaultAzureCredential. */
function runtime(instanceId: string): Runtime {
  const built = createRuntime(config, { instanceId });
  runtimes.push(built);
  return built;
}

/** A client that presents `credential`'s token to Azurite, for reading what the runtime wrote. */
function raw(table: string, credential: TokenCredential = new DefaultAzureCredential()): ReturnType<typeof createTableClient> {
  return createTableClient(config.storage, table, credential);
}

describe('identity-based storage (Azurite over HTTPS with --oauth basic)', () => {
  it('reads AzureWebJobsStorage__tableServiceUri as the identity-based storage setting', () => {
    expect(azurite.tableServiceUri).toBe(`https://127.0.0.1:${azurite.tablePort}/devstoreaccount1`);
    expect(config.storage).toEqual({
      kind: 'identity',
      tableServiceUri: azurite.tableServiceUri,
      clientId: undefined,
      resourceId: undefined,
    });
  });

  it('carries invalidations between instances through the coherence table', async () => {
    const a = runtime('instance-a');
    const b = runtime('instance-b');
    await b.pollCoherence();
    await a.events().coherence.publish('contoso-vault2', 'erp-api-key', 'v2');
    expect(await b.pollCoherence()).toBe(1);
    // No key anywhere in the setting: the bearer tokens came from the managed-identity endpoint.
    expect(identity.tokenRequests()).toBeGreaterThan(0);
    const rows = [];
    for await (const row of raw(INVALIDATIONS_TABLE).listEntities()) rows.push(row);
    expect(rows.some((row) => row.publishedBy === 'instance-a')).toBe(true);
  });

  it('keeps deliveries and dead letters in their tables', async () => {
    const { ledger } = runtime('instance-c').events();
    const eventId = `evt-${randomBytes(6).toString('hex')}`;
    await ledger.recordAttempt({
      eventId,
      consumer: 'erp',
      webhookId: `msg_${eventId}`,
      eventType: 'secretbroker.secret.rotated',
      subject: 'contoso-vault2/erp-api-key',
      status: 500,
      error: 'HTTP 500 from consumer',
      at: new Date('2025-03-01T10:00:00.000Z'),
    });
    await ledger.markDeadLettered(eventId, 'erp', new Date('2025-03-01T10:05:00.000Z'), 'consumer gone');
    expect(await ledger.get(eventId, 'erp')).toMatchObject({ eventId, consumer: 'erp', attempts: 1 });
    expect((await ledger.listDeadLetters()).map((d) => d.eventId)).toContain(eventId);
    for (const table of [DELIVERIES_TABLE, DEAD_LETTERS_TABLE]) {
      const rows = [];
      for await (const row of raw(table).listEntities({ queryOptions: { filter: `eventId eq '${eventId}'` } })) rows.push(row);
      expect(rows).toHaveLength(1);
    }
  });

  it('keeps health reports and the run lease', async () => {
    const store = runtime('instance-d').healthStore();
    await expect(store.latestReport()).resolves.toBeUndefined();
    const release = await store.tryAcquireRunLease('instance-d:1', 60_000);
    expect(release).toBeInstanceOf(Function);
    await expect(store.tryAcquireRunLease('instance-e:1', 60_000)).resolves.toBeUndefined();
    await release?.();
  });

  it('is refused by Azurite when the token is for another audience (Key Vault)', async () => {
    const vaultToken = await new DefaultAzureCredential().getToken('https://vault.azure.net/.default');
    const wrongAudience: TokenCredential = { getToken: (): Promise<AccessToken> => Promise.resolve(vaultToken) };
    const failure = await raw(INVALIDATIONS_TABLE, wrongAudience)
      .listEntities()
      .next()
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(tableErrorStatus(failure)).toBe(403);
    expect((failure as { details?: Record<string, unknown> }).details).toMatchObject({
      errorCode: 'AuthenticationFailed',
      AuthenticationErrorDetail: 'Invalid token audience.',
    });
  });
});
