/**
 * Key Vault's Event Grid events as the emulator delivers them (handshake, both schemas, retries,
 * duplicates), read back with the real @azure/eventgrid deserializer; the local Event Grid topic
 * driven by the real EventGridPublisherClient + DefaultAzureCredential; and the test consumer webhook
 * that verifies Standard Webhooks signatures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { AzureKeyCredential, EventGridDeserializer, EventGridPublisherClient, isSystemEvent } from '@azure/eventgrid';
import { DefaultAzureCredential } from '@azure/identity';
import { SecretClient, isRestError } from '@azure/keyvault-secrets';
import { Webhook } from 'standardwebhooks';
import { startEventGridTopic, type EventGridTopic } from '../../local/emulators/eventGridTopic';
import { EMULATOR_SUBSCRIPTION_ID, type EventDeliverySchema } from '../../local/emulators/keyVaultTypes';
import { useLocalAzureInProcess } from '../support/inProcessAzure';
import { startLocalAzure, type LocalAzure } from '../../local/emulators/localAzure';
import { newSigningSecret, startWebhookReceiver, type WebhookReceiver } from '../../local/emulators/webhookReceiver';

const VAULT = 'contoso';
const RESOURCE_ID = `/subscriptions/${EMULATOR_SUBSCRIPTION_ID}/resourceGroups/local/providers/Microsoft.KeyVault/vaults/${VAULT}`;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Variables that would steer DefaultAzureCredential or the proxy policy elsewhere. */

let azure: LocalAzure;
let stateDir: string;
let restoreProcess: (() => void) | undefined;
let credential: DefaultAzureCredential;
const deserializer = new EventGridDeserializer();
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(os.tmpdir(), 'kv-events-'));
  azure = await startLocalAzure({ stateDir, vaults: [VAULT] });
  restoreProcess = useLocalAzureInProcess(azure);
  credential = new DefaultAzureCredential();
});

afterAll(async () => {
  await azure?.stop();
  restoreProcess?.();
  rmSync(stateDir, { recursive: true, force: true });
});

afterEach(async () => {
  azure.keyVault.setEventSubscription(null);
  await azure.keyVault.whenIdle();
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

// ---------------------------------------------------------------- an Event Grid webhook subscriber

interface SinkRequest {
  method: string;
  headers: Record<string, string>;
  body: string;
}

interface SinkBehaviour {
  /** `refuse`: wrong validationResponse, or OPTIONS without WebHook-Allowed-Origin. */
  handshake: 'accept' | 'refuse';
  /** Notifications answered `failStatus` before the first 200. */
  failNotifications: number;
  failStatus: number;
  /** `reset`: drop the connection instead of answering a notification. */
  notifications: 'answer' | 'reset';
}

/** A webhook that speaks Event Grid's side of the handshake and records every request. */
async function startSink(initial: Partial<SinkBehaviour> = {}) {
  let behaviour: SinkBehaviour = { handshake: 'accept', failNotifications: 0, failStatus: 500, notifications: 'answer', ...initial };
  const requests: SinkRequest[] = [];
  const waiters: Array<() => void> = [];
  const isNotification = (r: SinkRequest) => r.method === 'POST' && r.headers['aeg-event-type'] === 'Notification';

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      const r: SinkRequest = { method: req.method ?? '', headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(r);
      for (const wake of waiters.splice(0)) wake();
      if (r.method === 'OPTIONS') {
        const origin = headers['webhook-request-origin'] ?? '';
        res.writeHead(200, behaviour.handshake === 'accept' ? { 'WebHook-Allowed-Origin': origin, 'WebHook-Allowed-Rate': '120' } : {});
        return res.end();
      }
      if (headers['aeg-event-type'] === 'SubscriptionValidation') {
        const code = JSON.parse(r.body)[0].data.validationCode;
        const answer = JSON.stringify({ validationResponse: behaviour.handshake === 'accept' ? code : 'not-the-code' });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(answer);
      }
      if (behaviour.notifications === 'reset') return req.socket.destroy();
      if (behaviour.failNotifications > 0) {
        behaviour.failNotifications--;
        res.writeHead(behaviour.failStatus);
        return res.end();
      }
      res.writeHead(200);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  cleanups.push(stop);
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/api/events`,
    requests: () => [...requests],
    notifications: () => requests.filter(isNotification),
    set(b: Partial<SinkBehaviour>) {
      behaviour = { ...behaviour, ...b };
    },
    /** Resolves once `n` notifications have arrived. */
    async waitForNotifications(n: number): Promise<void> {
      while (requests.filter(isNotification).length < n) await new Promise<void>((resolve) => waiters.push(resolve));
    },
    stop,
  };
}

/** POSTs and returns status and body, bypassing any SDK. */
function post(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; body: string }> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = send(target, { method: 'POST', headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function epoch(d: Date): number {
  return Math.floor(d.getTime() / 1000);
}

// ---------------------------------------------------------------- Key Vault events

describe('Key Vault events in the Event Grid schema', () => {
  it('validates the endpoint, then delivers SecretNewVersionCreated for a PUT through the SDK', async () => {
    const sink = await startSink();
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'EventGridSchema', subscriptionName: 'broker-events' });
    const expiresOn = new Date(Date.now() + 90 * 24 * 3600 * 1000);

    const set = await new SecretClient(azure.keyVault.vaultUri(VAULT), credential).setSecret('erp-db', 'v1', { expiresOn });
    const event = azure.keyVault.emittedEvents().find((e) => e.subject === 'erp-db');
    expect(event).toBeDefined();
    await expect(azure.keyVault.whenDelivered(event!.id)).resolves.toEqual({ status: 200, attempts: 1 });

    const [validation, notification, ...rest] = sink.requests();
    expect(rest).toEqual([]);
    expect(validation!.method).toBe('POST');
    expect(validation!.headers).toMatchObject({
      'aeg-event-type': 'SubscriptionValidation',
      'aeg-subscription-name': 'BROKER-EVENTS',
      'content-type': 'application/json; charset=utf-8',
    });
    const [validationEvent] = JSON.parse(validation!.body);
    expect(validationEvent).toEqual({
      id: expect.stringMatching(GUID),
      topic: RESOURCE_ID,
      subject: '',
      data: { validationCode: expect.stringMatching(GUID), validationUrl: expect.stringContaining('/validate?id=') },
      eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
      eventTime: expect.stringMatching(ISO_TIME),
      metadataVersion: '1',
      dataVersion: '2',
    });
    expect(azure.keyVault.lastHandshake()).toEqual({ ok: true, detail: expect.stringContaining('validationResponse') });

    expect(notification!.method).toBe('POST');
    expect(notification!.headers).toMatchObject({
      'content-type': 'application/json; charset=utf-8',
      'aeg-event-type': 'Notification',
      'aeg-subscription-name': 'BROKER-EVENTS',
      'aeg-delivery-count': '0',
      'aeg-data-version': '1',
      'aeg-metadata-version': '1',
    });
    const version = set.properties.version!;
    expect(JSON.parse(notification!.body)).toEqual([
      {
        id: event!.id,
        topic: RESOURCE_ID,
        subject: 'erp-db',
        eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
        eventTime: expect.stringMatching(ISO_TIME),
        data: {
          Id: `https://contoso.vault.azure.net/secrets/erp-db/${version}`,
          VaultName: VAULT,
          ObjectType: 'Secret',
          ObjectName: 'erp-db',
          Version: version,
          NBF: null,
          EXP: epoch(expiresOn),
        },
        dataVersion: '1',
        metadataVersion: '1',
      },
    ]);

    const [parsed, ...more] = await deserializer.deserializeEventGridEvents(notification!.body);
    expect(more).toEqual([]);
    expect(isSystemEvent('Microsoft.KeyVault.SecretNewVersionCreated', parsed!)).toBe(true);
    expect(parsed!.eventTime).toBeInstanceOf(Date);
    // The deserializer leaves `data` as sent: PascalCase keys, although the SDK's data types are camelCase.
    expect(parsed!.data).toMatchObject({ VaultName: VAULT, Version: version });
    expect(parsed!.data).not.toHaveProperty('vaultName');
  });

  it('validates once per subscription and vault, not once per event', async () => {
    const sink = await startSink();
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'EventGridSchema' });
    const first = azure.keyVault.setSecret(VAULT, 'once-a', 'x');
    const second = azure.keyVault.setSecret(VAULT, 'once-b', 'y');
    await expect(azure.keyVault.whenDelivered(first.eventId!)).resolves.toEqual({ status: 200, attempts: 1 });
    await expect(azure.keyVault.whenDelivered(second.eventId!)).resolves.toEqual({ status: 200, attempts: 1 });

    const kinds = sink.requests().map((r) => r.headers['aeg-event-type']);
    expect(kinds.filter((k) => k === 'SubscriptionValidation')).toHaveLength(1);
    expect(
      sink
        .notifications()
        .map((n) => JSON.parse(n.body)[0].subject)
        .sort(),
    ).toEqual(['once-a', 'once-b']);
    expect(sink.notifications().map((n) => n.headers['aeg-subscription-name'])).toEqual(['KEYVAULT-EVENTS', 'KEYVAULT-EVENTS']);
  });
});

describe('Key Vault events in the CloudEvents 1.0 schema', () => {
  it('passes the OPTIONS abuse-protection handshake, then POSTs one structured CloudEvent', async () => {
    const sink = await startSink();
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'CloudEventSchemaV1_0' });
    const notBefore = new Date(Date.now() - 60_000);
    const expiresOn = new Date(Date.now() + 3600_000);

    const { version, eventId } = azure.keyVault.setSecret(VAULT, 'crm-api-key', 'v1', { notBefore, expiresOn });
    await expect(azure.keyVault.whenDelivered(eventId!)).resolves.toEqual({ status: 200, attempts: 1 });

    const [options, notification, ...rest] = sink.requests();
    expect(rest).toEqual([]);
    expect(options!.method).toBe('OPTIONS');
    expect(options!.headers['webhook-request-origin']).toBe('eventgrid.azure.net');
    expect(azure.keyVault.lastHandshake()).toEqual({ ok: true, detail: expect.stringContaining('WebHook-Allowed-Origin') });

    expect(notification!.method).toBe('POST');
    expect(notification!.headers).toMatchObject({
      'content-type': 'application/cloudevents+json; charset=utf-8',
      'aeg-event-type': 'Notification',
      'aeg-delivery-count': '0',
    });
    expect(JSON.parse(notification!.body)).toEqual({
      specversion: '1.0',
      id: eventId,
      source: RESOURCE_ID,
      subject: 'crm-api-key',
      type: 'Microsoft.KeyVault.SecretNewVersionCreated',
      time: expect.stringMatching(ISO_TIME),
      data: {
        Id: `https://contoso.vault.azure.net/secrets/crm-api-key/${version}`,
        VaultName: VAULT,
        ObjectType: 'Secret',
        ObjectName: 'crm-api-key',
        Version: version,
        NBF: epoch(notBefore),
        EXP: epoch(expiresOn),
      },
    });

    const [parsed] = await deserializer.deserializeCloudEvents(notification!.body);
    expect(isSystemEvent('Microsoft.KeyVault.SecretNewVersionCreated', parsed!)).toBe(true);
    expect(parsed).toMatchObject({ specversion: '1.0', id: eventId, source: RESOURCE_ID, subject: 'crm-api-key' });
    expect(parsed!.time).toBeInstanceOf(Date);
    expect(parsed!.data).toMatchObject({ ObjectName: 'crm-api-key', EXP: epoch(expiresOn) });
    expect(parsed!.extensionAttributes).toBeUndefined();
  });

  it.each(['SecretNearExpiry', 'SecretExpired'] as const)('emits %s on demand with the latest version and a chosen id', async (kind) => {
    const sink = await startSink();
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'CloudEventSchemaV1_0' });
    azure.keyVault.setSecret(VAULT, `ending-${kind}`, 'old');
    const expiresOn = new Date(Date.now() + 24 * 3600_000);
    const { version } = azure.keyVault.setSecret(VAULT, `ending-${kind}`, 'new', { expiresOn });

    const id = await azure.keyVault.emitSecretEvent(VAULT, `ending-${kind}`, kind, { id: `fixed-${kind}` });
    expect(id).toBe(`fixed-${kind}`);
    await expect(azure.keyVault.whenDelivered(id)).resolves.toEqual({ status: 200, attempts: 1 });

    const [parsed] = await deserializer.deserializeCloudEvents(sink.notifications().at(-1)!.body);
    expect(isSystemEvent(`Microsoft.KeyVault.${kind}`, parsed!)).toBe(true);
    expect(parsed!.id).toBe(`fixed-${kind}`);
    expect(parsed!.data).toMatchObject({ Version: version, EXP: epoch(expiresOn), NBF: null });
  });

  it('refuses to emit without a subscription or for an unknown secret', async () => {
    azure.keyVault.setSecret(VAULT, 'quiet', 'x');
    await expect(azure.keyVault.emitSecretEvent(VAULT, 'quiet', 'SecretExpired')).rejects.toThrow('No event subscription');
    expect(azure.keyVault.setSecret(VAULT, 'quiet', 'y')).not.toHaveProperty('eventId');

    const sink = await startSink();
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'CloudEventSchemaV1_0' });
    await expect(azure.keyVault.emitSecretEvent(VAULT, 'no-such-secret', 'SecretExpired')).rejects.toThrow(
      'Unknown secret: contoso/no-such-secret',
    );
    await expect(azure.keyVault.whenDelivered('no-such-event')).rejects.toThrow('No delivery of event no-such-event');
    await expect(azure.keyVault.redeliver('no-such-event')).rejects.toThrow('Unknown event id');
  });
});

describe('delivery retries and duplicates', () => {
  it.each<EventDeliverySchema>(['EventGridSchema', 'CloudEventSchemaV1_0'])(
    'retries a failing endpoint until it answers 2xx, counting aeg-delivery-count from 0 (%s)',
    async (schema) => {
      const sink = await startSink({ failNotifications: 2, failStatus: 503 });
      azure.keyVault.setEventSubscription({ endpoint: sink.url, schema, retryDelayMs: 10 });
      const { eventId } = azure.keyVault.setSecret(VAULT, 'flaky', 'x');

      await expect(azure.keyVault.whenDelivered(eventId!)).resolves.toEqual({ status: 200, attempts: 3 });
      const notes = sink.notifications();
      expect(notes.map((n) => n.headers['aeg-delivery-count'])).toEqual(['0', '1', '2']);
      expect(new Set(notes.map((n) => n.body)).size).toBe(1);
      expect(azure.keyVault.eventDeliveries().filter((d) => d.eventId === eventId)).toEqual([
        { eventId, eventType: 'Microsoft.KeyVault.SecretNewVersionCreated', attempt: 1, status: 503, schema },
        { eventId, eventType: 'Microsoft.KeyVault.SecretNewVersionCreated', attempt: 2, status: 503, schema },
        { eventId, eventType: 'Microsoft.KeyVault.SecretNewVersionCreated', attempt: 3, status: 200, schema },
      ]);
    },
  );

  it('gives up after maxDeliveryAttempts non-2xx answers', async () => {
    const sink = await startSink({ failNotifications: Number.MAX_SAFE_INTEGER, failStatus: 500 });
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'EventGridSchema', maxDeliveryAttempts: 3, retryDelayMs: 5 });
    const { eventId } = azure.keyVault.setSecret(VAULT, 'doomed', 'x');

    await expect(azure.keyVault.whenDelivered(eventId!)).resolves.toEqual({ status: null, attempts: 3 });
    expect(sink.notifications()).toHaveLength(3);
    expect(
      azure.keyVault
        .eventDeliveries()
        .filter((d) => d.eventId === eventId)
        .map((d) => d.status),
    ).toEqual([500, 500, 500]);
  });

  it('counts a dropped connection as a failed attempt with no status', async () => {
    const sink = await startSink({ notifications: 'reset' });
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'CloudEventSchemaV1_0', maxDeliveryAttempts: 2, retryDelayMs: 5 });
    const { eventId } = azure.keyVault.setSecret(VAULT, 'dropped', 'x');

    await expect(azure.keyVault.whenDelivered(eventId!)).resolves.toEqual({ status: null, attempts: 2 });
    const attempts = azure.keyVault.eventDeliveries().filter((d) => d.eventId === eventId);
    expect(attempts.map((a) => a.status)).toEqual([null, null]);
    expect(attempts[0]!.error).toMatch(/socket hang up|ECONNRESET/);
  });

  it('abandons pending retries when the subscription is removed', async () => {
    const sink = await startSink({ failNotifications: Number.MAX_SAFE_INTEGER });
    // A retry delay far longer than the test: only the removal can end this delivery.
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'EventGridSchema', retryDelayMs: 3_600_000 });
    const { eventId } = azure.keyVault.setSecret(VAULT, 'abandoned', 'x');
    await sink.waitForNotifications(1);

    azure.keyVault.setEventSubscription(null);
    await expect(azure.keyVault.whenDelivered(eventId!)).resolves.toEqual({ status: null, attempts: 1 });
    expect(azure.keyVault.setSecret(VAULT, 'abandoned', 'y').eventId).toBeUndefined();
    expect(sink.notifications()).toHaveLength(1);
  });

  it('redelivers an event with the same id and body', async () => {
    const sink = await startSink();
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'EventGridSchema' });
    const { eventId } = azure.keyVault.setSecret(VAULT, 'twice', 'x');
    await azure.keyVault.whenDelivered(eventId!);

    await expect(azure.keyVault.redeliver(eventId!)).resolves.toEqual({ status: 200, attempts: 1 });
    const [first, second] = sink.notifications();
    expect(sink.notifications()).toHaveLength(2);
    expect(second!.body).toBe(first!.body);
    expect(JSON.parse(second!.body)[0].id).toBe(eventId);
    // A duplicate is a new delivery, not a retry.
    expect(second!.headers['aeg-delivery-count']).toBe('0');
  });
});

describe('a failed handshake', () => {
  it.each<[EventDeliverySchema, string]>([
    ['EventGridSchema', 'validationResponse'],
    ['CloudEventSchemaV1_0', 'WebHook-Allowed-Origin'],
  ])('stops every delivery to the subscription (%s)', async (schema, detail) => {
    const sink = await startSink({ handshake: 'refuse' });
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema });
    const first = azure.keyVault.setSecret(VAULT, 'refused', 'x');
    await expect(azure.keyVault.whenDelivered(first.eventId!)).resolves.toEqual({ status: null, attempts: 0 });
    const second = azure.keyVault.setSecret(VAULT, 'refused', 'y');
    await expect(azure.keyVault.whenDelivered(second.eventId!)).resolves.toEqual({ status: null, attempts: 0 });

    expect(sink.requests()).toHaveLength(1);
    expect(sink.notifications()).toEqual([]);
    expect(azure.keyVault.eventDeliveries().filter((d) => d.eventId === first.eventId || d.eventId === second.eventId)).toEqual([]);
    expect(azure.keyVault.lastHandshake()).toEqual({ ok: false, detail: expect.stringContaining(detail) });

    // Re-creating the subscription validates again, as updating a real one does.
    sink.set({ handshake: 'accept' });
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema });
    const third = azure.keyVault.setSecret(VAULT, 'refused', 'z');
    await expect(azure.keyVault.whenDelivered(third.eventId!)).resolves.toEqual({ status: 200, attempts: 1 });
    expect(azure.keyVault.lastHandshake()?.ok).toBe(true);
  });

  it('records an unreachable endpoint as a failed handshake', async () => {
    const sink = await startSink();
    await sink.stop();
    azure.keyVault.setEventSubscription({ endpoint: sink.url, schema: 'EventGridSchema' });
    const { eventId } = azure.keyVault.setSecret(VAULT, 'unreachable', 'x');
    await expect(azure.keyVault.whenDelivered(eventId!)).resolves.toEqual({ status: null, attempts: 0 });
    expect(azure.keyVault.lastHandshake()).toEqual({ ok: false, detail: expect.stringContaining('ECONNREFUSED') });
  });

  it('rejects a subscription whose endpoint is not an http(s) URL', () => {
    expect(() => azure.keyVault.setEventSubscription({ endpoint: 'ftp://127.0.0.1/x', schema: 'EventGridSchema' })).toThrow(
      'must be http(s)',
    );
    expect(() =>
      azure.keyVault.setEventSubscription({ endpoint: 'http://127.0.0.1/x', schema: 'EventGridSchema', maxDeliveryAttempts: 0 }),
    ).toThrow('maxDeliveryAttempts must be a positive integer');
  });
});

// ---------------------------------------------------------------- Event Grid topic

describe('local Event Grid topic', () => {
  let topic: EventGridTopic;

  beforeAll(async () => {
    topic = await startEventGridTopic({ certPem: azure.certPem, keyPem: azure.keyPem, tokenSecret: azure.tokenSecret });
  });
  afterAll(async () => {
    await topic?.stop();
  });
  beforeEach(() => topic.clear());

  it('accepts a CloudEvent batch from EventGridPublisherClient with a managed-identity token', async () => {
    const tokensBefore = azure.identity.tokenRequests();
    const client = new EventGridPublisherClient(topic.endpoint, 'CloudEvent', credential);
    const time = new Date('2026-01-02T03:04:05.000Z');
    await client.send([
      {
        type: 'secretbroker.secret.rotated',
        source: '/secretbroker/contoso',
        subject: 'contoso/erp-db',
        id: 'evt-1',
        time,
        data: { secret: 'erp-db' },
      },
    ]);

    expect(azure.identity.tokenRequests()).toBeGreaterThan(tokensBefore);
    const [publish, ...rest] = topic.publishes();
    expect(rest).toEqual([]);
    expect(publish).toMatchObject({
      auth: 'bearer',
      contentType: 'application/cloudevents-batch+json; charset=utf-8',
      apiVersion: '2018-01-01',
    });
    expect(topic.events()).toEqual([
      {
        specversion: '1.0',
        type: 'secretbroker.secret.rotated',
        source: '/secretbroker/contoso',
        id: 'evt-1',
        time: '2026-01-02T03:04:05.000Z',
        subject: 'contoso/erp-db',
        datacontenttype: 'application/json',
        data: { secret: 'erp-db' },
      },
    ]);
  });

  it('carries binary data as data_base64, which the deserializer turns back into bytes', async () => {
    const client = new EventGridPublisherClient(topic.endpoint, 'CloudEvent', credential);
    await client.send([{ type: 'bin', source: '/test', data: new Uint8Array([1, 2, 255]), datacontenttype: 'application/octet-stream' }]);
    const [event] = topic.events() as Array<Record<string, unknown>>;
    expect(event).toMatchObject({ data_base64: 'AQL/', datacontenttype: 'application/octet-stream' });
    expect(event).not.toHaveProperty('data');
    const [parsed] = await deserializer.deserializeCloudEvents(event!);
    expect(parsed!.data).toEqual(new Uint8Array([1, 2, 255]));
  });

  it('accepts the topic access key and refuses a wrong key, a vault token and no credential with 401', async () => {
    await new EventGridPublisherClient(topic.endpoint, 'CloudEvent', new AzureKeyCredential(topic.accessKey)).send([
      { type: 't', source: '/s' },
    ]);
    expect(topic.publishes().map((p) => p.auth)).toEqual(['sas-key']);

    const wrongKey = await new EventGridPublisherClient(topic.endpoint, 'CloudEvent', new AzureKeyCredential('bm90LXRoZS1rZXk='))
      .send([{ type: 't', source: '/s' }])
      .catch((e: unknown) => e);
    expect(isRestError(wrongKey) && wrongKey.statusCode).toBe(401);

    const vaultToken = await credential.getToken('https://vault.azure.net/.default');
    const body = JSON.stringify([{ specversion: '1.0', id: '1', source: '/s', type: 't' }]);
    const withVaultToken = await post(
      `${topic.endpoint}?api-version=2018-01-01`,
      { Authorization: `Bearer ${vaultToken.token}`, 'Content-Type': 'application/cloudevents-batch+json; charset=utf-8' },
      body,
    );
    expect(withVaultToken.status).toBe(401);
    expect(JSON.parse(withVaultToken.body).error.message).toBe(
      'The access token audience is invalid; expected https://eventgrid.azure.net.',
    );

    const anonymous = await post(
      `${topic.endpoint}?api-version=2018-01-01`,
      { 'Content-Type': 'application/cloudevents-batch+json' },
      body,
    );
    expect(anonymous.status).toBe(401);
    expect(topic.publishes()).toHaveLength(1);
  });

  it('answers 400 to an event that is not a CloudEvent 1.0', async () => {
    const res = await post(
      `${topic.endpoint}?api-version=2018-01-01`,
      { 'aeg-sas-key': topic.accessKey, 'Content-Type': 'application/cloudevents-batch+json' },
      JSON.stringify([{ specversion: '0.3', id: '1', source: '/s', type: 't' }]),
    );
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toEqual({ error: { code: 'BadRequest', message: 'Event 0: specversion must be 1.0.' } });
    expect(topic.events()).toEqual([]);
  });
});

// ---------------------------------------------------------------- consumer webhook

describe('webhook receiver', () => {
  let receiver: WebhookReceiver;
  let secret: string;

  beforeEach(async () => {
    secret = newSigningSecret();
    receiver = await startWebhookReceiver({ signingSecret: secret });
  });
  afterEach(async () => {
    await receiver.stop();
  });

  /** Signs `body` as a Standard Webhooks sender does. */
  function signed(signingSecret: string, id: string, body: string): Record<string, string> {
    const now = new Date();
    return {
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': new Webhook(signingSecret).sign(id, now, body),
      'content-type': 'application/cloudevents+json; charset=utf-8',
    };
  }

  const EVENT = {
    specversion: '1.0',
    id: 'msg_1',
    source: '/secretbroker',
    type: 'secretbroker.secret.rotated',
    data: { secret: 'erp-db' },
  };

  it('makes whsec_ secrets of 32 random bytes', () => {
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    expect(newSigningSecret()).not.toBe(secret);
  });

  it('verifies a signed payload and accepts it; rejects a tampered one with 401', async () => {
    const body = JSON.stringify(EVENT);
    const headers = signed(secret, 'msg_1', body);
    await expect(post(receiver.url, headers, body)).resolves.toEqual({ status: 200, body: '' });
    await expect(post(receiver.url, headers, body.replace('erp-db', 'erp-dc'))).resolves.toEqual({ status: 401, body: '' });

    const [good, tampered] = receiver.received();
    expect(good).toMatchObject({ verified: true, status: 200, event: EVENT, body });
    expect(good!.headers['webhook-id']).toBe('msg_1');
    expect(tampered).toMatchObject({ verified: false, status: 401 });
    expect(receiver.verifiedEvents()).toEqual([EVENT]);
    expect(receiver.attempts()).toBe(2);
  });

  it('does not verify a payload signed with another secret, and the whsec_ prefix is optional', async () => {
    const body = JSON.stringify(EVENT);
    await post(receiver.url, signed(newSigningSecret(), 'msg_2', body), body);
    // The library strips "whsec_" when present: the bare base64 key signs identically.
    await post(receiver.url, signed(secret.slice('whsec_'.length), 'msg_3', body), body);
    expect(receiver.received().map((r) => r.verified)).toEqual([false, true]);
  });

  it('fails the first requests, then accepts; answers 503 while down', async () => {
    const body = JSON.stringify(EVENT);
    receiver.setBehaviour({ failFirst: 2, failStatus: 429 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(receiver.url, signed(secret, 'msg_1', body), body)).status);
    expect(statuses).toEqual([429, 429, 200]);

    receiver.setBehaviour({ down: true });
    expect((await post(receiver.url, signed(secret, 'msg_1', body), body)).status).toBe(503);
    expect(receiver.verifiedEvents()).toHaveLength(1);
    expect(receiver.received().map((r) => r.verified)).toEqual([true, true, true, true]);
  });

  it('holds the answer for delayMs: a consumer slower than its caller never answers', async () => {
    receiver.setBehaviour({ delayMs: 3_600_000 });
    const body = JSON.stringify(EVENT);
    const pending = post(receiver.url, signed(secret, 'msg_1', body), body).catch((e: Error) => e);
    while (receiver.attempts() === 0) await new Promise((resolve) => setImmediate(resolve));

    expect(receiver.received()[0]).toMatchObject({ verified: true, status: 0 });
    expect(receiver.verifiedEvents()).toEqual([]);
    await receiver.stop();
    await expect(pending).resolves.toMatchObject({ message: 'socket hang up' });
  });
});
