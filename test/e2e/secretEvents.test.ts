/**
 * End to end: Key Vault events through the local host. The Key Vault emulator delivers its events
 * to host A's Event Grid endpoint like a subscription would; host B shares A's storage (Azurite)
 * and must drop its cached value too; consumers are local webhooks that verify Standard Webhooks
 * signatures; the delivery ledger and dead letters are read back from Azurite.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAzurite } from '../../local/emulators/azurite';
import { createDevCertificate } from '../../local/emulators/devCertificate';
import { startIngestionEndpoint } from '../../local/emulators/ingestionEndpoint';
import { startEventGridTopic } from '../../local/emulators/eventGridTopic';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { createTableDeliveryLedger } from '../../shared/notify/deliveryLedger';
import { newVersionSourceId } from '../../shared/notify/notification';
import { startBrokerHost } from '../support/brokerHost';
import type { BrokerHost } from '../support/brokerHost';
import { newSigningSecret, startWebhookReceiver } from '../../local/emulators/webhookReceiver';
import type { WebhookReceiver } from '../../local/emulators/webhookReceiver';

const KEY = 'events-test-key';
const VAULT = 'contoso-vault2';
let azure: LocalAzure;
let azurite: Awaited<ReturnType<typeof startAzurite>>;
let topic: Awaited<ReturnType<typeof startEventGridTopic>>;
let ingestion: Awaited<ReturnType<typeof startIngestionEndpoint>>;
let hostA: BrokerHost;
let hostB: BrokerHost;
const receivers: Record<'erp' | 'crm' | 'flaky' | 'gone', WebhookReceiver> = {} as never;

async function resolve(host: BrokerHost, name: string): Promise<{ status: number; value: unknown; cache: string | null }> {
  const res = await fetch(`${host.url}/api/secrets/${name}`, { headers: { 'x-api-key': KEY } });
  const body = (await res.json()) as { value?: unknown };
  return { status: res.status, value: body.value, cache: res.headers.get('x-cache') };
}

async function eventually<T>(probe: () => Promise<T>, done: (value: T) => boolean, withinMs: number): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
}

function eventsOf(receiver: WebhookReceiver, sourceEventId: string): Record<string, any>[] {
  return (receiver.verifiedEvents() as Record<string, any>[]).filter((e) => e.data?.sourceEventId === sourceEventId);
}

beforeAll(async () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-events-'));
  [azure, azurite] = await Promise.all([
    startLocalAzure({ stateDir, vaults: [VAULT] }),
    startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } }),
  ]);
  topic = await startEventGridTopic({ certPem: azure.certPem, keyPem: azure.keyPem, tokenSecret: azure.tokenSecret });
  ingestion = await startIngestionEndpoint({ certificate: await createDevCertificate(stateDir) });
  const consumers = [];
  for (const [name, behaviour] of [
    ['erp', {}],
    ['crm', {}],
    ['flaky', { failFirst: 2 }],
    ['gone', { down: true }],
  ] as const) {
    const signingSecret = newSigningSecret();
    azure.keyVault.setSecret(VAULT, `whsec-${name}`, signingSecret);
    receivers[name] = await startWebhookReceiver({ signingSecret, ...behaviour });
    consumers.push({
      name,
      secrets: [`${name}-*`],
      events: name === 'erp' ? ['SecretNewVersionCreated', 'SecretNearExpiry', 'SecretExpired'] : ['SecretNewVersionCreated'],
      webhook: receivers[name].url,
      signingSecret: `whsec-${name}`,
    });
  }
  const env = {
    ...azure.env,
    KEY_VAULT_URI: azure.keyVault.vaultUri(VAULT),
    KEY_VAULT_RESOURCE_IDS: azure.keyVault.resourceId(VAULT),
    ACCESS_POLICY: JSON.stringify({
      callers: [{ name: 'app', identities: [{ apiKeySha256: createHash('sha256').update(KEY).digest('hex') }], allow: ['*'] }],
    }),
    CONSUMERS: JSON.stringify(consumers),
    AzureWebJobsStorage: azurite.connectionString,
  };
  [hostA, hostB] = await Promise.all([
    startBrokerHost({
      ...env,
      NOTIFY_EVENTGRID_ENDPOINT: topic.endpoint,
      APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString,
      APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
    }),
    startBrokerHost(env),
  ]);
  azure.keyVault.setEventSubscription({
    endpoint: `${hostA.url}/runtime/webhooks/eventgrid?functionName=secretEvents`,
    schema: 'EventGridSchema',
    maxDeliveryAttempts: 12,
    retryDelayMs: 100,
  });
});

afterAll(async () => {
  await Promise.all([hostA?.stop(), hostB?.stop()]);
  await Promise.all([...Object.values(receivers).map((r) => r.stop()), topic?.stop(), ingestion?.stop(), azure?.stop()]);
  await azurite?.stop();
});

describe('a rotation', () => {
  let eventId: string;
  let newVersion: string;

  beforeAll(async () => {
    azure.keyVault.setSecret(VAULT, 'erp-token', 'erp-v1');
    // Both instances cache the first version.
    expect((await resolve(hostA, 'erp-token')).value).toBe('erp-v1');
    expect((await resolve(hostB, 'erp-token')).value).toBe('erp-v1');
    expect((await resolve(hostB, 'erp-token')).cache).toBe('HIT');
    const set = azure.keyVault.setSecret(VAULT, 'erp-token', 'erp-v2');
    newVersion = set.version;
    eventId = set.eventId!;
    expect(await azure.keyVault.whenDelivered(eventId)).toMatchObject({ status: 200 });
  });

  it('passed the subscription validation handshake first', () => {
    expect(azure.keyVault.lastHandshake()).toMatchObject({ ok: true });
  });

  it('is served at once by the instance that got the event', async () => {
    expect((await resolve(hostA, 'erp-token')).value).toBe('erp-v2');
  });

  it('is served within 30 s by another instance sharing the storage', async () => {
    const seen = await eventually(
      () => resolve(hostB, 'erp-token'),
      (r) => r.value === 'erp-v2',
      30_000,
    );
    expect(seen.value).toBe('erp-v2');
  });

  it('notifies the subscribed consumer exactly once, signed, with the contract payload', () => {
    const [notification, ...more] = eventsOf(receivers.erp, eventId);
    expect(more).toHaveLength(0);
    expect(notification).toMatchObject({
      specversion: '1.0',
      type: 'secretbroker.secret.rotated',
      subject: 'default/erp-token',
      datacontenttype: 'application/json',
      data: {
        vault: 'default',
        vaultUri: azure.keyVault.vaultUri(VAULT),
        secret: 'erp-token',
        version: newVersion,
        sourceEventId: eventId,
        sourceEventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
      },
    });
    const request = receivers.erp.received().find((r) => r.body.includes(eventId))!;
    expect(request.headers['content-type']).toBe('application/cloudevents+json; charset=utf-8');
    expect(request.headers['webhook-id']).toBe(notification!.id);
    expect(request.body).not.toContain('erp-v2');
  });

  it('notifies no consumer of other secrets', () => {
    expect(eventsOf(receivers.crm, eventId)).toHaveLength(0);
    expect(eventsOf(receivers.flaky, eventId)).toHaveLength(0);
  });

  it('publishes the notification to the Event Grid topic too', () => {
    const published = topic.events().filter((e: any) => e.data?.sourceEventId === eventId);
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ type: 'secretbroker.secret.rotated', subject: 'default/erp-token' });
  });

  it('notifies nobody twice when Event Grid delivers the same event again', async () => {
    const before = receivers.erp.received().length;
    expect(await azure.keyVault.redeliver(eventId)).toMatchObject({ status: 200 });
    expect(receivers.erp.received().length).toBe(before);
    expect(eventsOf(receivers.erp, eventId)).toHaveLength(1);
    expect(topic.events().filter((e: any) => e.data?.sourceEventId === eventId)).toHaveLength(1);
  });
});

describe('consumers that are down', () => {
  it('delivers to a consumer that failed its first attempts later, once', async () => {
    const { eventId } = azure.keyVault.setSecret(VAULT, 'flaky-token', 'v1');
    expect(await azure.keyVault.whenDelivered(eventId!)).toMatchObject({ status: 200, attempts: 3 });
    expect(eventsOf(receivers.flaky, eventId!)).toHaveLength(1);
    expect(
      receivers.flaky
        .received()
        .filter((r) => r.body.includes(eventId!))
        .map((r) => r.status),
    ).toEqual([500, 500, 200]);
  });

  it('writes a dead-letter record for a consumer down past the retry window, then stops retrying', async () => {
    const { eventId, version } = azure.keyVault.setSecret(VAULT, 'gone-token', 'v1');
    const outcome = await azure.keyVault.whenDelivered(eventId!);
    expect(outcome.status).toBe(200);
    const ledger = createTableDeliveryLedger(azurite.connectionString);
    // A new version's deliveries are kept under the version's key (shared with a rotation that wrote it).
    const key = newVersionSourceId('default', 'gone-token', version);
    const dead = (await ledger.listDeadLetters()).filter((d) => d.eventId === key);
    expect(dead).toEqual([
      expect.objectContaining({ consumer: 'gone', eventType: 'secretbroker.secret.rotated', subject: 'default/gone-token', attempts: 8 }),
    ]);
    expect(await ledger.get(key, 'gone')).toMatchObject({ state: 'deadLettered' });
    expect(eventsOf(receivers.gone, eventId!)).toHaveLength(0);
  });
});

describe('other events', () => {
  it('notifies near-expiry and expiry to the consumers subscribed to them', async () => {
    azure.keyVault.setSecret(VAULT, 'erp-cert', 'v1', { expiresOn: new Date(Date.now() + 86_400_000) });
    const near = await azure.keyVault.emitSecretEvent(VAULT, 'erp-cert', 'SecretNearExpiry');
    const expired = await azure.keyVault.emitSecretEvent(VAULT, 'erp-cert', 'SecretExpired');
    expect(await azure.keyVault.whenDelivered(near)).toMatchObject({ status: 200 });
    expect(await azure.keyVault.whenDelivered(expired)).toMatchObject({ status: 200 });
    expect(eventsOf(receivers.erp, near).map((e) => e.type)).toEqual(['secretbroker.secret.nearexpiry']);
    expect(eventsOf(receivers.erp, expired).map((e) => e.type)).toEqual(['secretbroker.secret.expired']);
    expect(eventsOf(receivers.erp, near)[0]?.data.expiresOn).not.toBeNull();
  });

  it('handles the CloudEvents 1.0 schema after its abuse-protection handshake', async () => {
    azure.keyVault.setEventSubscription({
      endpoint: `${hostA.url}/runtime/webhooks/eventgrid?functionName=secretEvents`,
      schema: 'CloudEventSchemaV1_0',
      maxDeliveryAttempts: 12,
      retryDelayMs: 100,
    });
    try {
      const { eventId } = azure.keyVault.setSecret(VAULT, 'erp-token', 'erp-v3');
      expect(await azure.keyVault.whenDelivered(eventId!)).toMatchObject({ status: 200 });
      expect(azure.keyVault.lastHandshake()).toMatchObject({ ok: true });
      expect(eventsOf(receivers.erp, eventId!)).toHaveLength(1);
      expect((await resolve(hostA, 'erp-token')).value).toBe('erp-v3');
    } finally {
      azure.keyVault.setEventSubscription({
        endpoint: `${hostA.url}/runtime/webhooks/eventgrid?functionName=secretEvents`,
        schema: 'EventGridSchema',
        maxDeliveryAttempts: 12,
        retryDelayMs: 100,
      });
    }
  });

  it('refuses a forged event for a vault that is not configured: nothing changes, nobody is notified', async () => {
    const { eventId } = azure.keyVault.setSecret(VAULT, 'crm-token', 'crm-v1');
    await azure.keyVault.whenDelivered(eventId!);
    expect((await resolve(hostA, 'crm-token')).value).toBe('crm-v1');
    const before = receivers.crm.received().length;
    const forged = [
      {
        id: 'forged-1',
        topic: '/subscriptions/evil/resourceGroups/x/providers/Microsoft.KeyVault/vaults/evil-vault',
        subject: 'crm-token',
        eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
        eventTime: new Date().toISOString(),
        data: {
          Id: 'https://evil-vault.vault.azure.net/secrets/crm-token/abc',
          VaultName: 'evil-vault',
          ObjectType: 'Secret',
          ObjectName: 'crm-token',
          Version: 'abc',
          NBF: null,
          EXP: null,
        },
        dataVersion: '1',
        metadataVersion: '1',
      },
    ];
    const res = await fetch(`${hostA.url}/runtime/webhooks/eventgrid?functionName=secretEvents`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'aeg-event-type': 'Notification' },
      body: JSON.stringify(forged),
    });
    expect(res.status).toBe(200);
    expect(receivers.crm.received().length).toBe(before);
    expect((await resolve(hostA, 'crm-token')).cache).toBe('HIT');
    expect(hostA.output()).toContain('refused: vault "evil-vault" is not configured here');
  });

  it.each([
    ['not JSON', '{"id":', 'application/json'],
    ['an event without its fields', '[{"id":"x"}]', 'application/json'],
    ['a CloudEvent without a type', '{"specversion":"1.0","id":"x","source":"/x"}', 'application/cloudevents+json'],
  ])('answers %s with 400 problem+json and no stack trace', async (_label, body, contentType) => {
    const res = await fetch(`${hostA.url}/runtime/webhooks/eventgrid?functionName=secretEvents`, {
      method: 'POST',
      headers: { 'content-type': contentType, 'aeg-event-type': 'Notification' },
      body,
    });
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(text).not.toMatch(/\bat .*\.js:\d+/);
  });
});

describe('telemetry', () => {
  it('has an event per Key Vault event and per delivery attempt, and no secret value', async () => {
    await hostA.stop(); // flushes telemetry
    const events = ingestion
      .items()
      .filter((i) => i.data.baseType === 'EventData')
      .map((i) => i.data.baseData as { name: string; properties: Record<string, string> });
    const received = events.filter((e) => e.name === 'KeyVaultEventReceived');
    expect(received.map((e) => e.properties.outcome)).toEqual(expect.arrayContaining(['handled', 'refused']));
    const deliveries = events.filter((e) => e.name === 'NotificationDelivery');
    expect(deliveries.filter((d) => d.properties.consumer === 'flaky').map((d) => [d.properties.attempt, d.properties.outcome])).toEqual(
      expect.arrayContaining([
        ['1', 'failed'],
        ['3', 'delivered'],
      ]),
    );
    expect(deliveries.some((d) => d.properties.consumer === 'gone' && d.properties.outcome === 'deadLettered')).toBe(true);
    for (const raw of ingestion.raw()) expect(raw).not.toMatch(/erp-v[123]|whsec_/);
    const metrics = ingestion
      .items()
      .filter((i) => i.data.baseType === 'MetricData')
      .flatMap((i) => (i.data.baseData as { metrics: { name: string }[] }).metrics);
    expect(metrics.map((m) => m.name)).toContain('NotificationDeliveryLagMs');
  });
});
