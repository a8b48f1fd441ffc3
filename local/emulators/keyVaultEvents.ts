// Event Grid for the Key Vault emulator: the webhook event subscription on every vault, the secret
// events it emits, and their delivery (endpoint validation handshake, delivery bodies and headers,
// retries), all recorded for tests to inspect.
import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { headerValue } from './keyVaultHttp';
import { type SecretRecord, type SecretVersion, type Vault, keyVaultResourceId } from './keyVaultStore';
import {
  DEFAULT_MAX_DELIVERY_ATTEMPTS,
  DEFAULT_RETRY_DELAY_MS,
  type EmittedSecretEvent,
  type EmulatorEventSubscription,
  type EventDeliveryAttempt,
  type EventDeliveryOutcome,
  type EventDeliverySchema,
  type SecretEventKind,
} from './keyVaultTypes';

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_SUBSCRIPTION_NAME = 'KEYVAULT-EVENTS';
/** What Event Grid puts in `WebHook-Request-Origin` of the CloudEvents abuse-protection handshake. */
const WEBHOOK_REQUEST_ORIGIN = 'eventgrid.azure.net';
const MAX_RESPONSE_BYTES = 64 * 1024;

export const SECRET_EVENT_KINDS: ReadonlySet<string> = new Set<SecretEventKind>([
  'SecretNewVersionCreated',
  'SecretNearExpiry',
  'SecretExpired',
]);

/** A subscription as the emulator runs it: settings with defaults, plus its own lifetime. */
interface ActiveSubscription {
  endpoint: URL;
  schema: EventDeliverySchema;
  maxDeliveryAttempts: number;
  retryDelayMs: number;
  subscriptionName: string;
  requestTimeoutMs: number;
  /** Aborted when the subscription is replaced or the emulator stops: pending retries give up. */
  abort: AbortController;
  /** Per vault: started by its first delivery, shared by the concurrent ones. */
  handshakes: Map<string, Promise<boolean>>;
}

/**
 * The event subscription and everything it emitted and attempted; the public API of
 * {@link KeyVaultEmulator} (setEventSubscription, emitSecretEvent, ...) documents the behaviour.
 */
export class SecretEventPublisher {
  private subscription: ActiveSubscription | undefined;
  /** Emitted events by id (the latest emission when a test reuses an id). */
  private readonly emitted = new Map<string, EmittedSecretEvent>();
  private readonly emittedInOrder: EmittedSecretEvent[] = [];
  private readonly attempts: EventDeliveryAttempt[] = [];
  /** Outcome of the latest delivery run per event id. */
  private readonly outcomes = new Map<string, Promise<EventDeliveryOutcome>>();
  private readonly inFlight = new Set<Promise<EventDeliveryOutcome>>();
  private handshakeResult: { ok: boolean; detail: string } | undefined;

  /** @throws Error when the endpoint is not an absolute http(s) URL or a number is out of range. */
  setSubscription(sub: EmulatorEventSubscription | null): void {
    const next = sub === null ? undefined : activeSubscription(sub);
    this.subscription?.abort.abort();
    this.subscription = next;
  }

  /** Abandons the subscription's pending retries (the emulator stops). */
  abortSubscription(): void {
    this.subscription?.abort.abort();
  }

  /**
   * Emits `kind` for that version and starts delivering it; returns the event id.
   * @throws Error when there is no event subscription.
   */
  emit(vault: Vault, record: SecretRecord, version: SecretVersion, kind: SecretEventKind, id?: string): string {
    const sub = this.subscription;
    if (!sub) throw new Error('No event subscription: call setEventSubscription first.');
    return this.publish(this.secretEvent(vault, record, version, kind, id), sub);
  }

  /** @throws Error (rejection) when the event id is unknown or there is no event subscription. */
  redeliver(eventId: string): Promise<EventDeliveryOutcome> {
    const event = this.emitted.get(eventId);
    if (!event) return Promise.reject(new Error(`Unknown event id: ${eventId}`));
    const sub = this.subscription;
    if (!sub) return Promise.reject(new Error('No event subscription: call setEventSubscription first.'));
    return this.startDelivery(event, sub);
  }

  emittedEvents(): EmittedSecretEvent[] {
    return this.emittedInOrder.map((e) => ({ ...e, data: { ...e.data } }));
  }

  eventDeliveries(): EventDeliveryAttempt[] {
    return this.attempts.map((a) => ({ ...a }));
  }

  /** @throws Error (rejection) when no delivery of that event id was started. */
  whenDelivered(eventId: string): Promise<EventDeliveryOutcome> {
    return this.outcomes.get(eventId) ?? Promise.reject(new Error(`No delivery of event ${eventId} was started`));
  }

  async whenIdle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** The deliveries in progress right now. */
  pending(): Promise<EventDeliveryOutcome>[] {
    return [...this.inFlight];
  }

  lastHandshake(): { ok: boolean; detail: string } | undefined {
    return this.handshakeResult && { ...this.handshakeResult };
  }

  /** Emits `SecretNewVersionCreated` for a version just created; its event id, or undefined without a subscription. */
  publishNewVersion(vault: Vault, name: string, version: SecretVersion): string | undefined {
    const sub = this.subscription;
    const record = vault.secrets.get(name.toLowerCase());
    if (!sub || !record) return undefined;
    return this.publish(this.secretEvent(vault, record, version, 'SecretNewVersionCreated'), sub);
  }

  private secretEvent(vault: Vault, record: SecretRecord, v: SecretVersion, kind: SecretEventKind, id?: string): EmittedSecretEvent {
    return {
      id: id ?? randomUUID(),
      eventType: `Microsoft.KeyVault.${kind}`,
      vault: vault.name,
      topic: keyVaultResourceId(vault.name),
      subject: record.name,
      time: new Date(),
      data: {
        Id: `https://${vault.name}.vault.azure.net/secrets/${record.name}/${v.version}`,
        VaultName: vault.name,
        ObjectType: 'Secret',
        ObjectName: record.name,
        Version: v.version,
        NBF: v.nbf ?? null,
        EXP: v.exp ?? null,
      },
    };
  }

  private publish(event: EmittedSecretEvent, sub: ActiveSubscription): string {
    this.emitted.set(event.id, event);
    this.emittedInOrder.push(event);
    void this.startDelivery(event, sub);
    return event.id;
  }

  private startDelivery(event: EmittedSecretEvent, sub: ActiveSubscription): Promise<EventDeliveryOutcome> {
    const run = this.deliver(event, sub);
    this.outcomes.set(event.id, run);
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
    return run;
  }

  /** Never rejects: every failure ends as `status: null`. */
  private async deliver(event: EmittedSecretEvent, sub: ActiveSubscription): Promise<EventDeliveryOutcome> {
    if (!(await this.ensureHandshake(sub, event.vault))) return { status: null, attempts: 0 };
    const body = sub.schema === 'EventGridSchema' ? eventGridSchemaBody(event) : cloudEventBody(event);
    let attempt = 0;
    while (attempt < sub.maxDeliveryAttempts && !sub.abort.signal.aborted) {
      attempt++;
      const headers: Record<string, string> = {
        'Content-Type':
          sub.schema === 'EventGridSchema' ? 'application/json; charset=utf-8' : 'application/cloudevents+json; charset=utf-8',
        'aeg-event-type': 'Notification',
        'aeg-subscription-name': sub.subscriptionName,
        'aeg-delivery-count': String(attempt - 1),
      };
      if (sub.schema === 'EventGridSchema') {
        headers['aeg-data-version'] = '1';
        headers['aeg-metadata-version'] = '1';
      }
      const res = await sendRequest(sub, 'POST', headers, body);
      const record: EventDeliveryAttempt = {
        eventId: event.id,
        eventType: event.eventType,
        attempt,
        status: res.status,
        schema: sub.schema,
      };
      if (res.status === null) record.error = res.error;
      this.attempts.push(record);
      if (res.status !== null && res.status >= 200 && res.status < 300) return { status: res.status, attempts: attempt };
      if (attempt < sub.maxDeliveryAttempts) {
        await sleep(sub.retryDelayMs, undefined, { signal: sub.abort.signal }).catch(() => undefined);
      }
    }
    return { status: null, attempts: attempt };
  }

  private ensureHandshake(sub: ActiveSubscription, vault: string): Promise<boolean> {
    let pending = sub.handshakes.get(vault);
    if (!pending) {
      pending = this.handshake(sub, vault).then((result) => {
        this.handshakeResult = result;
        return result.ok;
      });
      sub.handshakes.set(vault, pending);
    }
    return pending;
  }

  /** One handshake attempt; Event Grid's own retries of a validation would only slow tests down. */
  private async handshake(sub: ActiveSubscription, vault: string): Promise<{ ok: boolean; detail: string }> {
    if (sub.schema === 'CloudEventSchemaV1_0') {
      const res = await sendRequest(sub, 'OPTIONS', { 'WebHook-Request-Origin': WEBHOOK_REQUEST_ORIGIN }, undefined);
      if (res.status === null) return { ok: false, detail: `${vault}: OPTIONS failed: ${res.error}` };
      const allowed = headerValue(res.headers['webhook-allowed-origin']);
      if (res.status !== 200) return { ok: false, detail: `${vault}: OPTIONS answered HTTP ${res.status}, expected 200` };
      if (allowed !== WEBHOOK_REQUEST_ORIGIN && allowed !== '*') {
        return {
          ok: false,
          detail: `${vault}: OPTIONS answered WebHook-Allowed-Origin '${allowed ?? ''}', expected '${WEBHOOK_REQUEST_ORIGIN}'`,
        };
      }
      return { ok: true, detail: `${vault}: OPTIONS answered 200 with WebHook-Allowed-Origin '${allowed}'` };
    }
    const code = randomUUID();
    const now = new Date().toISOString();
    const validationUrl =
      `https://rp-local.eventgrid.azure.net:553/eventsubscriptions/${encodeURIComponent(sub.subscriptionName.toLowerCase())}/validate` +
      `?id=${code}&t=${now}&apiVersion=2018-05-01-preview&token=${randomBytes(16).toString('hex')}`;
    const body = JSON.stringify([
      {
        id: randomUUID(),
        topic: keyVaultResourceId(vault),
        subject: '',
        data: { validationCode: code, validationUrl },
        eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
        eventTime: now,
        metadataVersion: '1',
        dataVersion: '2',
      },
    ]);
    const res = await sendRequest(
      sub,
      'POST',
      {
        'Content-Type': 'application/json; charset=utf-8',
        'aeg-event-type': 'SubscriptionValidation',
        'aeg-subscription-name': sub.subscriptionName,
        'aeg-delivery-count': '0',
        'aeg-data-version': '2',
        'aeg-metadata-version': '1',
      },
      body,
    );
    if (res.status === null) return { ok: false, detail: `${vault}: SubscriptionValidation failed: ${res.error}` };
    // Event Grid only accepts 200; a 202 would start the manual (validationUrl) flow, which nothing here serves.
    if (res.status !== 200) return { ok: false, detail: `${vault}: SubscriptionValidation answered HTTP ${res.status}, expected 200` };
    let answer: unknown;
    try {
      answer = (JSON.parse(res.body) as { validationResponse?: unknown } | null)?.validationResponse;
    } catch {
      answer = undefined;
    }
    if (answer !== code) {
      return { ok: false, detail: `${vault}: SubscriptionValidation answered without the validationResponse '${code}'` };
    }
    return { ok: true, detail: `${vault}: SubscriptionValidation answered 200 with the validationResponse` };
  }
}

function activeSubscription(sub: EmulatorEventSubscription): ActiveSubscription {
  let endpoint: URL;
  try {
    endpoint = new URL(sub.endpoint);
  } catch {
    throw new Error(`Invalid event subscription endpoint: ${sub.endpoint}`);
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') {
    throw new Error(`Event subscription endpoint must be http(s): ${sub.endpoint}`);
  }
  if (sub.schema !== 'EventGridSchema' && sub.schema !== 'CloudEventSchemaV1_0') {
    throw new Error(`Unknown event delivery schema: ${String(sub.schema)}`);
  }
  const maxDeliveryAttempts = sub.maxDeliveryAttempts ?? DEFAULT_MAX_DELIVERY_ATTEMPTS;
  if (!Number.isInteger(maxDeliveryAttempts) || maxDeliveryAttempts < 1) {
    throw new Error(`maxDeliveryAttempts must be a positive integer, got ${maxDeliveryAttempts}`);
  }
  const retryDelayMs = sub.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  const requestTimeoutMs = sub.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  for (const [field, value] of [
    ['retryDelayMs', retryDelayMs],
    ['requestTimeoutMs', requestTimeoutMs],
  ] as const) {
    if (!Number.isFinite(value) || value < 0) throw new Error(`${field} must be a non-negative number, got ${value}`);
  }
  return {
    endpoint,
    schema: sub.schema,
    maxDeliveryAttempts,
    retryDelayMs,
    requestTimeoutMs,
    subscriptionName: (sub.subscriptionName ?? DEFAULT_SUBSCRIPTION_NAME).toUpperCase(),
    abort: new AbortController(),
    handshakes: new Map(),
  };
}

/** Event Grid schema delivery body: always an array, here of one event. */
function eventGridSchemaBody(e: EmittedSecretEvent): string {
  return JSON.stringify([
    {
      id: e.id,
      topic: e.topic,
      subject: e.subject,
      eventType: e.eventType,
      eventTime: e.time.toISOString(),
      data: e.data,
      dataVersion: '1',
      metadataVersion: '1',
    },
  ]);
}

/** CloudEvents 1.0 structured-mode body of one event; Event Grid sends system events without `datacontenttype`. */
function cloudEventBody(e: EmittedSecretEvent): string {
  return JSON.stringify({
    specversion: '1.0',
    id: e.id,
    source: e.topic,
    subject: e.subject,
    type: e.eventType,
    time: e.time.toISOString(),
    data: e.data,
  });
}

type HttpResult = { status: number; headers: IncomingMessage['headers']; body: string } | { status: null; error: string };

/**
 * One request to the subscriber; never rejects. A fresh connection per request (`agent: false`) so a
 * receiver that was stopped and restarted is never reached through a stale pooled socket, and no
 * HTTPS_PROXY applies, as Event Grid calls webhooks directly.
 */
function sendRequest(
  sub: ActiveSubscription,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
): Promise<HttpResult> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
    const send = sub.endpoint.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(sub.endpoint, {
      method,
      headers: payload === undefined ? headers : { ...headers, 'Content-Length': String(payload.length) },
      agent: false,
      signal: sub.abort.signal,
      timeout: sub.requestTimeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`no response within ${sub.requestTimeoutMs} ms`)));
    req.on('error', (err: Error) => resolve({ status: null, error: err.message }));
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = (): void => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.on('data', (chunk: Buffer) => {
        if (size >= MAX_RESPONSE_BYTES) return;
        chunks.push(chunk);
        size += chunk.length;
      });
      res.on('end', done);
      // The status line arrived, so the attempt has an answer even if the body was cut off.
      res.on('error', done);
      res.on('aborted', done);
    });
    req.end(payload);
  });
}
