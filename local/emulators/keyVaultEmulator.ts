import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { jwtVerify } from 'jose';
import { EMULATOR_ISSUER, EMULATOR_TENANT_ID, tokenSecretBytes } from './managedIdentityEndpoint';
import { sendJson as writeJson } from './sendJson';

/**
 * A failure the emulator injects. `latency` delays every matching request and combines with
 * the others; `times` is how many requests a fault hits before it clears itself (absent =
 * until {@link KeyVaultEmulator.clearFaults}).
 *
 * Network faults (`latency`, `reset`, `hang`) hit every request, including the SDK's first
 * unauthenticated challenge request. HTTP faults (`status`, `firewall`, `rbac`, `policy`) hit
 * only requests that carry a valid token, as the real service authenticates before it
 * authorises or throttles a caller.
 *
 * `probability` (0 to 1) makes a `status` or `reset` fault hit each matching request with that
 * chance, drawn from the emulator's random source ({@link KeyVaultEmulator.setRandomSource});
 * only the requests it hits count against `times`.
 */
export type KeyVaultFault =
  | { kind: 'latency'; ms: number }
  | { kind: 'status'; status: 429 | 500 | 503; retryAfterSeconds?: number | null; times?: number; probability?: number }
  | { kind: 'reset'; times?: number; probability?: number }
  | { kind: 'hang' }
  | { kind: 'firewall' }
  | { kind: 'rbac' }
  | { kind: 'policy' };

/**
 * Key Vault's service limit, per vault: at most `requests` authenticated requests in any
 * `windowMs` (a sliding window; the real limit for secrets is 4,000 per 10 s). A request past it
 * is answered 429 `Throttled` and does not count. `retryAfter` says whether that answer carries
 * `Retry-After` (seconds until the window has room): `always`, `never`, or `sometimes` (half the
 * time, from the random source). `now` is the limit's clock (default `Date.now`), so a simulation
 * running on simulated time is limited in simulated time.
 */
export interface KeyVaultRateLimit {
  requests: number;
  windowMs: number;
  retryAfter: 'always' | 'never' | 'sometimes';
  now?: () => number;
}

/** What the emulator refused or broke on purpose since start or {@link KeyVaultEmulator.resetCounts}. */
export interface InjectedCounts {
  /** 429s answered by the rate limit. */
  throttledByLimit: number;
  /** 429s answered by a `status` fault. */
  throttledByFault: number;
  /** Other statuses (500 / 503) answered by a `status` fault. */
  statusFaults: number;
  /** Connections reset by a `reset` fault. */
  resets: number;
}

/** Options of {@link KeyVaultEmulator.setSecret}. */
export interface EmulatorSecretOptions {
  contentType?: string;
  enabled?: boolean;
  notBefore?: Date;
  expiresOn?: Date;
  tags?: Record<string, string>;
}

/** Attributes {@link KeyVaultEmulator.updateSecret} may change; `null` clears a date. */
export interface EmulatorSecretUpdate {
  contentType?: string;
  enabled?: boolean;
  notBefore?: Date | null;
  expiresOn?: Date | null;
  tags?: Record<string, string>;
}

/** Filter of {@link KeyVaultEmulator.requestCount}; every given field must match. */
export interface RequestCountFilter {
  method?: string;
  /** Path without query string and without trailing slash, e.g. `/secrets/db-password`. */
  path?: string;
  vault?: string;
}

/** Azure subscription the emulated vaults pretend to live in (part of {@link KeyVaultEmulator.resourceId}). */
export const EMULATOR_SUBSCRIPTION_ID = '00000000-0000-0000-0000-000000000000';
/** Resource group the emulated vaults pretend to live in. */
export const EMULATOR_RESOURCE_GROUP = 'local';

/** The secret events Key Vault publishes to Event Grid (without the `Microsoft.KeyVault.` prefix). */
export type SecretEventKind = 'SecretNewVersionCreated' | 'SecretNearExpiry' | 'SecretExpired';

/** Output schema of an Event Grid event subscription. */
export type EventDeliverySchema = 'EventGridSchema' | 'CloudEventSchemaV1_0';

/** A webhook event subscription on every emulated vault, see {@link KeyVaultEmulator.setEventSubscription}. */
export interface EmulatorEventSubscription {
  /** Absolute http(s) URL the events are POSTed to. */
  endpoint: string;
  schema: EventDeliverySchema;
  /** Attempts per event, the first included. Default {@link DEFAULT_MAX_DELIVERY_ATTEMPTS}. */
  maxDeliveryAttempts?: number;
  /**
   * Pause between attempts. Default {@link DEFAULT_RETRY_DELAY_MS}; Event Grid's real schedule
   * (10 s, 30 s, 1 min, 5 min, ...) would make tests slow.
   */
  retryDelayMs?: number;
  /** Sent upper-cased in `aeg-subscription-name`, as Event Grid does. Default `KEYVAULT-EVENTS`. */
  subscriptionName?: string;
  /** Per-request timeout; a request that takes longer counts as a failed attempt. Default 30 000 ms (Event Grid's). */
  requestTimeoutMs?: number;
}

/** `data` of a Key Vault secret event; the casing is the service's (PascalCase, `NBF`/`EXP`). */
export interface SecretEventData {
  /** Secret id with version, e.g. `https://demo.vault.azure.net/secrets/db/0f1e...`. */
  Id: string;
  VaultName: string;
  ObjectType: 'Secret';
  ObjectName: string;
  Version: string;
  /** Not-before, epoch seconds, or null when the version has none. */
  NBF: number | null;
  /** Expiry, epoch seconds, or null when the version has none. */
  EXP: number | null;
}

/** An event the emulator emitted, independent of the schema it is delivered in. */
export interface EmittedSecretEvent {
  id: string;
  /** Full type, e.g. `Microsoft.KeyVault.SecretNewVersionCreated`. */
  eventType: string;
  vault: string;
  /** The vault's resource id (Event Grid `topic`, CloudEvents `source`). */
  topic: string;
  /** The secret name. */
  subject: string;
  time: Date;
  data: SecretEventData;
}

/** One HTTP attempt to deliver an event. */
export interface EventDeliveryAttempt {
  eventId: string;
  eventType: string;
  /** 1-based; the request carried `aeg-delivery-count: attempt - 1`. */
  attempt: number;
  /** HTTP status, or null when the connection failed or timed out. */
  status: number | null;
  schema: EventDeliverySchema;
  /** Why a null-status attempt failed (e.g. `connect ECONNREFUSED 127.0.0.1:1234`). */
  error?: string;
}

/** How one delivery of an event ended: a 2xx status, or null when it gave up (or the handshake failed: attempts 0). */
export type EventDeliveryOutcome = { status: number; attempts: number } | { status: null; attempts: number };

/** Default of {@link EmulatorEventSubscription.maxDeliveryAttempts}. */
export const DEFAULT_MAX_DELIVERY_ATTEMPTS = 5;
/** Default of {@link EmulatorEventSubscription.retryDelayMs}. */
export const DEFAULT_RETRY_DELAY_MS = 200;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_SUBSCRIPTION_NAME = 'KEYVAULT-EVENTS';
/** What Event Grid puts in `WebHook-Request-Origin` of the CloudEvents abuse-protection handshake. */
const WEBHOOK_REQUEST_ORIGIN = 'eventgrid.azure.net';
const MAX_RESPONSE_BYTES = 64 * 1024;

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

interface SecretVersion {
  version: string;
  value: string;
  contentType: string | undefined;
  enabled: boolean;
  nbf: number | undefined;
  exp: number | undefined;
  created: number;
  updated: number;
  tags: Record<string, string> | undefined;
}

interface SecretRecord {
  /** Casing of the first creation; Key Vault names are case-insensitive. */
  name: string;
  /** Creation order; the last one is "latest". */
  versions: SecretVersion[];
}

interface DeletedRecord {
  record: SecretRecord;
  deletedDate: number;
}

interface Vault {
  name: string;
  secrets: Map<string, SecretRecord>;
  deleted: Map<string, DeletedRecord>;
}

interface ActiveFault {
  fault: KeyVaultFault;
  vault: string | undefined;
  remaining: number | undefined;
}

interface Caller {
  appid: string;
  oid: string;
  exp: number;
}

type Json = Record<string, unknown>;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly inner?: string,
  ) {
    super(message);
  }
}

const RESOURCE = 'https://vault.azure.net';
const CHALLENGE = `Bearer authorization="https://login.microsoftonline.com/${EMULATOR_TENANT_ID}", resource="${RESOURCE}"`;
const NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
const API_VERSION_RE = /^(\d+\.\d+|\d{4}-\d{2}-\d{2})(-preview(\.\d+)?)?$/;
const RECOVERABLE_DAYS = 90;
const RECOVERY_LEVEL = 'Recoverable+Purgeable';
const DEFAULT_PAGE = 25;
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_VALUE_BYTES = 25 * 1024;
const TOKEN_CACHE_LIMIT = 10_000;
const NOT_FOUND_HINT =
  'If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182';

/**
 * Emulates the Azure Key Vault data-plane secrets API (7.x / 2025-xx api-versions) for
 * several vaults behind one HTTPS server on 127.0.0.1, distinguished by the Host header
 * `{vault}.vault.azure.net`. Speaks the bearer-challenge protocol the SDK expects and only
 * accepts HS256 tokens from the emulated managed-identity endpoint.
 */
export class KeyVaultEmulator {
  /** TCP port of the HTTPS server on 127.0.0.1. */
  readonly port: number;
  private readonly vaults = new Map<string, Vault>();
  private readonly faults: ActiveFault[] = [];
  private readonly counts = new Map<string, { vault: string; method: string; path: string; n: number }>();
  private readonly tokenCache = new Map<string, Caller>();
  private readonly sockets = new Set<Socket>();
  private subscription: ActiveSubscription | undefined;
  /** Emitted events by id (the latest emission when a test reuses an id). */
  private readonly emitted = new Map<string, EmittedSecretEvent>();
  private readonly emittedInOrder: EmittedSecretEvent[] = [];
  private readonly attempts: EventDeliveryAttempt[] = [];
  /** Outcome of the latest delivery run per event id. */
  private readonly outcomes = new Map<string, Promise<EventDeliveryOutcome>>();
  private readonly inFlight = new Set<Promise<EventDeliveryOutcome>>();
  private handshakeResult: { ok: boolean; detail: string } | undefined;
  private random: () => number = Math.random;
  private rateLimit: KeyVaultRateLimit | undefined;
  /** Per vault: when each request admitted within the current window arrived, oldest first. */
  private readonly admitted = new Map<string, number[]>();
  private injected: InjectedCounts = { throttledByLimit: 0, throttledByFault: 0, statusFaults: 0, resets: 0 };

  private constructor(
    private readonly server: Server,
    private readonly key: Uint8Array,
    vaultNames: string[],
    port: number,
  ) {
    this.port = port;
    for (const name of vaultNames) {
      this.vaults.set(name.toLowerCase(), { name: name.toLowerCase(), secrets: new Map(), deleted: new Map() });
    }
  }

  /** Starts the emulator; `vaults` are the vault names (the `{vault}` of `{vault}.vault.azure.net`). */
  static async start(opts: {
    certPem: string;
    keyPem: string;
    port?: number;
    vaults: string[];
    tokenSecret: Uint8Array | string;
  }): Promise<KeyVaultEmulator> {
    for (const v of opts.vaults) {
      if (!/^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/.test(v)) throw new Error(`Invalid vault name: ${v}`);
    }
    const server = createServer({ cert: opts.certPem, key: opts.keyPem });
    // Benchmarks reuse connections heavily; keep them longer than Node's 5 s default.
    server.keepAliveTimeout = 30_000;
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
    const emulator = new KeyVaultEmulator(server, tokenSecretBytes(opts.tokenSecret), opts.vaults, port);
    server.on('connection', (socket: Socket) => {
      emulator.sockets.add(socket);
      socket.once('close', () => emulator.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => emulator.onRequest(req, res));
    return emulator;
  }

  /** The vault URI a SecretClient should use, e.g. `https://demo.vault.azure.net/`. */
  vaultUri(vault: string): string {
    return `https://${vault.toLowerCase()}.vault.azure.net/`;
  }

  // ---------------------------------------------------------------- control API

  /**
   * Azure resource id of a vault: the `topic` (Event Grid schema) or `source` (CloudEvents) of its events,
   * e.g. `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/Microsoft.KeyVault/vaults/demo`.
   */
  resourceId(vault: string): string {
    return `/subscriptions/${EMULATOR_SUBSCRIPTION_ID}/resourceGroups/${EMULATOR_RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/${vault.toLowerCase()}`;
  }

  /**
   * Creates a new version of a secret (purging a soft-deleted one of that name first). With an
   * event subscription set, `eventId` is the id of the `SecretNewVersionCreated` event it emitted.
   */
  setSecret(vault: string, name: string, value: string, opts: EmulatorSecretOptions = {}): { version: string; eventId?: string } {
    const v = this.vaultOrThrow(vault);
    if (!NAME_RE.test(name)) throw new Error(`Invalid secret name: ${name}`);
    v.deleted.delete(name.toLowerCase());
    const created = this.addVersion(v, name, {
      value,
      contentType: opts.contentType,
      enabled: opts.enabled ?? true,
      nbf: toEpoch(opts.notBefore),
      exp: toEpoch(opts.expiresOn),
      tags: opts.tags ? { ...opts.tags } : undefined,
    });
    const eventId = this.publishNewVersion(v, name, created);
    return eventId === undefined ? { version: created.version } : { version: created.version, eventId };
  }

  /** Changes attributes of one version (`''` = latest), like `PATCH /secrets/{name}/{version}`. */
  updateSecret(vault: string, name: string, version: string, attrs: EmulatorSecretUpdate): void {
    const target = this.findVersion(this.vaultOrThrow(vault), name, version);
    if (attrs.contentType !== undefined) target.contentType = attrs.contentType;
    if (attrs.enabled !== undefined) target.enabled = attrs.enabled;
    if (attrs.notBefore !== undefined) target.nbf = toEpoch(attrs.notBefore ?? undefined);
    if (attrs.expiresOn !== undefined) target.exp = toEpoch(attrs.expiresOn ?? undefined);
    if (attrs.tags !== undefined) target.tags = { ...attrs.tags };
    target.updated = nowSeconds();
  }

  /** Soft-deletes a secret (all versions), as `DELETE /secrets/{name}` does. */
  deleteSecret(vault: string, name: string): void {
    this.softDelete(this.vaultOrThrow(vault), name);
  }

  /** Deletes a secret for good (soft delete then purge), as if it had never been there. */
  purgeSecret(vault: string, name: string): void {
    const v = this.vaultOrThrow(vault);
    if (v.secrets.has(name.toLowerCase())) this.softDelete(v, name);
    v.deleted.delete(name.toLowerCase());
  }

  /** Injects a fault for one vault, or for all vaults when `vault` is omitted. Replaces a fault of the same kind and scope. */
  setFault(fault: KeyVaultFault, vault?: string): void {
    const scope = vault?.toLowerCase();
    const existing = this.faults.findIndex((f) => f.fault.kind === fault.kind && f.vault === scope);
    if (existing !== -1) this.faults.splice(existing, 1);
    const times = 'times' in fault ? fault.times : undefined;
    if (times !== undefined && times <= 0) return;
    this.faults.push({ fault, vault: scope, remaining: times });
  }

  /**
   * Enforces a per-vault request limit ({@link KeyVaultRateLimit}), or removes it (`null`, the
   * default). Setting a limit starts its windows empty.
   * @throws Error when `requests` or `windowMs` is not a positive integer.
   */
  setRateLimit(limit: KeyVaultRateLimit | null): void {
    if (
      limit !== null &&
      (!Number.isInteger(limit.requests) || limit.requests <= 0 || !Number.isInteger(limit.windowMs) || limit.windowMs <= 0)
    ) {
      throw new Error('setRateLimit: requests and windowMs must be positive integers');
    }
    this.rateLimit = limit ?? undefined;
    this.admitted.clear();
  }

  /** The random source of probabilistic faults and `retryAfter: 'sometimes'` (default `Math.random`). */
  setRandomSource(random: () => number): void {
    this.random = random;
  }

  /** 429s, status faults and resets the emulator answered on purpose (see {@link InjectedCounts}). */
  injectedCounts(): InjectedCounts {
    return { ...this.injected };
  }

  /** Removes every injected fault (hung requests stay hung until {@link stop}). */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Requests received since start or {@link resetCounts}, keyed on method + path (query and trailing slash ignored). */
  requestCount(filter: RequestCountFilter = {}): number {
    const method = filter.method?.toUpperCase();
    const path = filter.path === undefined ? undefined : normalisePath(filter.path);
    const vault = filter.vault?.toLowerCase();
    let total = 0;
    for (const c of this.counts.values()) {
      if (method !== undefined && c.method !== method) continue;
      if (path !== undefined && c.path !== path) continue;
      if (vault !== undefined && c.vault !== vault) continue;
      total += c.n;
    }
    return total;
  }

  /** Zeroes the request counters and {@link injectedCounts}. */
  resetCounts(): void {
    this.counts.clear();
    this.injected = { throttledByLimit: 0, throttledByFault: 0, statusFaults: 0, resets: 0 };
  }

  /**
   * Destroys every open connection (idle keep-alive ones included) and keeps listening: a
   * simulation that ran many clients frees their sockets before the next run.
   */
  closeConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** Closes the keep-alive connections that carry no request right now; requests in flight go on. */
  closeIdleConnections(): void {
    this.server.closeIdleConnections();
  }

  /** Stops listening, destroys every connection (including hung ones) and abandons pending event deliveries. */
  async stop(): Promise<void> {
    this.subscription?.abort.abort();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await Promise.all([closed, ...this.inFlight]);
  }

  // ---------------------------------------------------------------- Event Grid events

  /**
   * Subscribes a webhook to the secret events of every vault (each vault is its own Event Grid system
   * topic, so each vault's first delivery validates the endpoint), or removes the subscription (`null`).
   *
   * From then on every new secret version (API `PUT` or {@link setSecret}) emits
   * `Microsoft.KeyVault.SecretNewVersionCreated`, delivered asynchronously: Event Grid schema as a JSON
   * array of one event (`application/json`), CloudEvents 1.0 as one structured event
   * (`application/cloudevents+json`); headers `aeg-event-type: Notification`, `aeg-subscription-name`,
   * `aeg-delivery-count` (0-based). A non-2xx answer or a connection error is retried after `retryDelayMs`
   * up to `maxDeliveryAttempts` attempts in all (Event Grid would not retry some 4xx; this emulator does).
   *
   * Before a vault's first delivery the endpoint must pass Event Grid's handshake: a
   * `Microsoft.EventGrid.SubscriptionValidationEvent` POST answered 200 with `{"validationResponse": code}`
   * (Event Grid schema), or the CloudEvents abuse-protection `OPTIONS` answered 200 with
   * `WebHook-Allowed-Origin` equal to `WebHook-Request-Origin` (or `*`). A failed handshake is final for the
   * subscription, as a failed validation leaves a real subscription in `Failed`: events are recorded, never sent.
   *
   * Replacing or removing the subscription abandons the old one's pending retries. Unlike Event Grid,
   * plain `http:` endpoints are allowed, so tests need no certificate.
   *
   * @throws Error when the endpoint is not an absolute http(s) URL or a number is out of range.
   */
  setEventSubscription(sub: EmulatorEventSubscription | null): void {
    const next = sub === null ? undefined : activeSubscription(sub);
    this.subscription?.abort.abort();
    this.subscription = next;
  }

  /**
   * Emits a secret event on demand, describing `opts.version` (default: the latest version) with that
   * version's attributes, and starts delivering it. `opts.id` fixes the event id (default: a new GUID).
   * Resolves with the event id once the delivery has started; see {@link whenDelivered}.
   *
   * @throws Error (rejection) when there is no event subscription, or the vault, secret or version is unknown.
   */
  emitSecretEvent(vault: string, name: string, kind: SecretEventKind, opts: { version?: string; id?: string } = {}): Promise<string> {
    // The executor turns the synchronous checks' throws into a rejection.
    return new Promise((resolve) => {
      if (!SECRET_EVENT_KINDS.has(kind)) throw new Error(`Unknown secret event kind: ${String(kind)}`);
      const v = this.vaultOrThrow(vault);
      const record = v.secrets.get(name.toLowerCase());
      if (!record) throw new Error(`Unknown secret: ${vault}/${name}`);
      const wanted = opts.version?.toLowerCase();
      const version = wanted === undefined ? record.versions.at(-1) : record.versions.find((x) => x.version === wanted);
      if (!version) throw new Error(`Unknown version: ${vault}/${name}/${opts.version ?? ''}`);
      const sub = this.subscription;
      if (!sub) throw new Error('No event subscription: call setEventSubscription first.');
      resolve(this.publish(this.secretEvent(v, record, version, kind, opts.id), sub));
    });
  }

  /**
   * Delivers an already emitted event again, with the same id and content, to the current subscription
   * (Event Grid's at-least-once delivery can duplicate an event). Resolves with that delivery's outcome.
   *
   * @throws Error (rejection) when the event id is unknown or there is no event subscription.
   */
  redeliver(eventId: string): Promise<EventDeliveryOutcome> {
    const event = this.emitted.get(eventId);
    if (!event) return Promise.reject(new Error(`Unknown event id: ${eventId}`));
    const sub = this.subscription;
    if (!sub) return Promise.reject(new Error('No event subscription: call setEventSubscription first.'));
    return this.startDelivery(event, sub);
  }

  /** Every event emitted while a subscription was set, oldest first. */
  emittedEvents(): EmittedSecretEvent[] {
    return this.emittedInOrder.map((e) => ({ ...e, data: { ...e.data } }));
  }

  /** Every HTTP delivery attempt made so far (handshakes excluded), oldest first. */
  eventDeliveries(): EventDeliveryAttempt[] {
    return this.attempts.map((a) => ({ ...a }));
  }

  /**
   * Resolves when the latest delivery of `eventId` started so far succeeded (2xx) or gave up
   * (attempts exhausted, subscription replaced, emulator stopped, or handshake failed with `attempts: 0`).
   *
   * @throws Error (rejection) when no delivery of that event id was started.
   */
  whenDelivered(eventId: string): Promise<EventDeliveryOutcome> {
    return this.outcomes.get(eventId) ?? Promise.reject(new Error(`No delivery of event ${eventId} was started`));
  }

  /** Resolves when no delivery is in progress. */
  async whenIdle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** Result of the most recent subscription handshake, or undefined before the first one. */
  lastHandshake(): { ok: boolean; detail: string } | undefined {
    return this.handshakeResult && { ...this.handshakeResult };
  }

  private publishNewVersion(vault: Vault, name: string, version: SecretVersion): string | undefined {
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
      topic: this.resourceId(vault.name),
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
        topic: this.resourceId(vault),
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

  // ---------------------------------------------------------------- HTTP pipeline

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = normalisePath(q === -1 ? rawUrl : rawUrl.slice(0, q));
    const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
    const vaultName = vaultFromHost(req.headers.host);
    this.count(vaultName ?? '', method, path);

    const vault = vaultName === undefined ? undefined : this.vaults.get(vaultName);
    if (!vault) {
      // The real service has no such host: DNS would fail. 404 keeps the failure fast and explicit.
      return sendError(res, new HttpError(404, 'VaultNotFound', `No vault is served for host '${req.headers.host ?? ''}'.`));
    }

    const latency = this.latencyFor(vault.name);
    if (latency > 0) {
      setTimeout(() => {
        if (!res.destroyed) this.afterLatency(req, res, vault, method, path, query);
      }, latency);
    } else {
      this.afterLatency(req, res, vault, method, path, query);
    }
  }

  private afterLatency(
    req: IncomingMessage,
    res: ServerResponse,
    vault: Vault,
    method: string,
    path: string,
    query: URLSearchParams,
  ): void {
    const network = this.takeFault(vault.name, NETWORK_KINDS);
    if (network?.kind === 'reset') {
      this.injected.resets++;
      // RST rather than FIN so clients see ECONNRESET, as with a dropped load-balancer connection.
      resetSocket(req.socket);
      return;
    }
    if (network?.kind === 'hang') return; // never answer; stop() destroys the socket

    const caller = this.cachedCaller(req.headers.authorization);
    if (caller) {
      this.authorised(req, res, vault, method, path, query, caller);
      return;
    }
    this.verify(req.headers.authorization).then(
      (verified) => {
        if (res.destroyed) return;
        if (typeof verified === 'string') return sendChallenge(res, verified);
        this.authorised(req, res, vault, method, path, query, verified);
      },
      (err: unknown) => sendError(res, new HttpError(500, 'InternalServerError', String(err))),
    );
  }

  private authorised(
    req: IncomingMessage,
    res: ServerResponse,
    vault: Vault,
    method: string,
    path: string,
    query: URLSearchParams,
    caller: Caller,
  ): void {
    const limited = this.overLimit(vault.name);
    if (limited !== undefined) {
      this.injected.throttledByLimit++;
      return sendError(res, new HttpError(429, 'Throttled', THROTTLED_MESSAGE), limited);
    }
    const fault = this.takeFault(vault.name, HTTP_KINDS);
    if (fault?.kind === 'status') {
      if (fault.status === 429) this.injected.throttledByFault++;
      else this.injected.statusFaults++;
    }
    if (fault) return sendFault(res, fault, vault.name, method, path, caller);
    const needsBody = method === 'PUT' || method === 'PATCH';
    if (!needsBody) {
      this.dispatch(res, vault, method, path, query, undefined);
      return;
    }
    readJson(req).then(
      (body) => this.dispatch(res, vault, method, path, query, body),
      (err: unknown) => sendError(res, err instanceof HttpError ? err : new HttpError(400, 'BadParameter', String(err))),
    );
  }

  private dispatch(res: ServerResponse, vault: Vault, method: string, path: string, query: URLSearchParams, body: Json | undefined): void {
    try {
      const apiVersion = query.get('api-version');
      if (!apiVersion) throw new HttpError(400, 'BadParameter', "The 'api-version' query parameter is missing.");
      if (!API_VERSION_RE.test(apiVersion)) {
        throw new HttpError(
          400,
          'BadParameter',
          `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`,
        );
      }
      const ctx: RequestContext = { vault, query, apiVersion, path };
      const result = this.route(ctx, method, path.split('/').slice(1).map(safeDecode), body);
      if (result === null) {
        res.writeHead(204, baseHeaders());
        res.end();
      } else {
        sendJson(res, 200, result);
      }
    } catch (err) {
      sendError(res, err instanceof HttpError ? err : new HttpError(500, 'InternalServerError', String(err)));
    }
  }

  private route(ctx: RequestContext, method: string, seg: string[], body: Json | undefined): Json | null {
    const [collection, name, third, fourth] = seg;
    if (collection === 'secrets') {
      if (name === undefined) return expectMethod(method, 'GET') && this.list(ctx, false);
      if (name === 'restore' && method === 'POST') throw notSupported('restore');
      checkName(name);
      if (third === undefined) {
        if (method === 'GET') return this.getBundle(ctx.vault, name, '');
        if (method === 'PUT') return this.putSecret(ctx.vault, name, body);
        if (method === 'DELETE') return this.deletedBundle(ctx.vault, this.softDelete(ctx.vault, name));
        if (method === 'PATCH') return this.patchSecret(ctx.vault, name, '', body);
        throw methodNotAllowed(method);
      }
      if (fourth !== undefined) throw routeNotFound(ctx.path);
      if (third === 'versions') return expectMethod(method, 'GET') && this.listVersions(ctx, name);
      if (third === 'backup' && method === 'POST') throw notSupported('backup');
      if (method === 'GET') return this.getBundle(ctx.vault, name, third);
      if (method === 'PATCH') return this.patchSecret(ctx.vault, name, third, body);
      throw methodNotAllowed(method);
    }
    if (collection === 'deletedsecrets') {
      if (name === undefined) return expectMethod(method, 'GET') && this.list(ctx, true);
      checkName(name);
      if (third === 'recover' && fourth === undefined) return expectMethod(method, 'POST') && this.recover(ctx.vault, name);
      if (third !== undefined) throw routeNotFound(ctx.path);
      if (method === 'GET') return this.deletedBundle(ctx.vault, this.deletedOrThrow(ctx.vault, name));
      if (method === 'DELETE') {
        this.deletedOrThrow(ctx.vault, name);
        ctx.vault.deleted.delete(name.toLowerCase());
        return null;
      }
      throw methodNotAllowed(method);
    }
    throw routeNotFound(ctx.path);
  }

  // ---------------------------------------------------------------- operations

  private getBundle(vault: Vault, name: string, version: string): Json {
    const record = vault.secrets.get(name.toLowerCase());
    const v = record && (version === '' ? record.versions.at(-1) : record.versions.find((x) => x.version === version.toLowerCase()));
    if (!record || !v) throw secretNotFound(version === '' ? name : `${name}/${version}`);
    if (!v.enabled) throw new HttpError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
    return this.bundle(vault, record, v, true);
  }

  private putSecret(vault: Vault, name: string, body: Json | undefined): Json {
    if (vault.deleted.has(name.toLowerCase())) {
      throw new HttpError(
        409,
        'Conflict',
        `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
      );
    }
    const value = body?.['value'];
    if (typeof value !== 'string') throw new HttpError(400, 'BadParameter', 'Property value is required.');
    if (Buffer.byteLength(value) > MAX_VALUE_BYTES)
      throw new HttpError(400, 'BadParameter', 'Secret value is too large; the maximum size is 25 KB.');
    const attrs = parseAttributes(body?.['attributes']);
    const created = this.addVersion(vault, name, {
      value,
      contentType: optionalString(body?.['contentType'], 'contentType'),
      enabled: attrs.enabled ?? true,
      nbf: attrs.nbf ?? undefined,
      exp: attrs.exp ?? undefined,
      tags: parseTags(body?.['tags']),
    });
    this.publishNewVersion(vault, name, created);
    return this.bundle(vault, vault.secrets.get(name.toLowerCase()) as SecretRecord, created, true);
  }

  private patchSecret(vault: Vault, name: string, version: string, body: Json | undefined): Json {
    const record = vault.secrets.get(name.toLowerCase());
    const target = this.findVersion(vault, name, version);
    const attrs = parseAttributes(body?.['attributes']);
    const contentType = optionalString(body?.['contentType'], 'contentType');
    const tags = parseTags(body?.['tags']);
    if (contentType !== undefined) target.contentType = contentType;
    if (attrs.enabled !== undefined) target.enabled = attrs.enabled;
    if (attrs.nbf !== undefined) target.nbf = attrs.nbf ?? undefined;
    if (attrs.exp !== undefined) target.exp = attrs.exp ?? undefined;
    if (tags !== undefined) target.tags = tags;
    target.updated = nowSeconds();
    // Key Vault answers an update with the bundle minus its value.
    return this.bundle(vault, record as SecretRecord, target, false);
  }

  private list(ctx: RequestContext, deleted: boolean): Json {
    const source = deleted ? ctx.vault.deleted : ctx.vault.secrets;
    const keys = [...source.keys()].sort();
    return this.page(ctx, keys, (key) => {
      if (deleted) {
        const d = ctx.vault.deleted.get(key) as DeletedRecord;
        return { ...this.item(ctx.vault, d.record, d.record.versions.at(-1) as SecretVersion, false), ...deletedFields(ctx.vault, d) };
      }
      const record = ctx.vault.secrets.get(key) as SecretRecord;
      return this.item(ctx.vault, record, record.versions.at(-1) as SecretVersion, false);
    });
  }

  private listVersions(ctx: RequestContext, name: string): Json {
    const record = ctx.vault.secrets.get(name.toLowerCase());
    if (!record) throw secretNotFound(name);
    // Skip tokens are positions in creation order, which never changes for a live secret.
    const keys = record.versions.map((_, i) => String(i).padStart(8, '0'));
    return this.page(ctx, keys, (key) => this.item(ctx.vault, record, record.versions[Number(key)] as SecretVersion, true));
  }

  /** One page of a listing; the skip token is the last key returned, so inserts do not shift pages. */
  private page(ctx: RequestContext, sortedKeys: string[], toItem: (key: string) => Json): Json {
    const maxParam = ctx.query.get('maxresults');
    let size = DEFAULT_PAGE;
    if (maxParam !== null) {
      size = Number(maxParam);
      if (!Number.isInteger(size) || size < 1 || size > 25) {
        throw new HttpError(400, 'BadParameter', `Invalid maxresults value '${maxParam}'. The value must be between 1 and 25.`);
      }
    }
    const skip = ctx.query.get('$skiptoken');
    const after = skip === null ? undefined : Buffer.from(skip, 'base64url').toString('utf8');
    const start = after === undefined ? 0 : sortedKeys.findIndex((k) => k > after);
    const slice = start === -1 ? [] : sortedKeys.slice(start, start + size);
    const last = slice.at(-1);
    const more = last !== undefined && start + size < sortedKeys.length;
    let nextLink: string | null = null;
    if (more) {
      // Absolute, with :443 and api-version, exactly like the service; the SDK GETs it verbatim.
      const params = [`api-version=${encodeURIComponent(ctx.apiVersion)}`, `$skiptoken=${Buffer.from(last).toString('base64url')}`];
      if (maxParam !== null) params.push(`maxresults=${size}`);
      nextLink = `https://${ctx.vault.name}.vault.azure.net:443${ctx.path}?${params.join('&')}`;
    }
    return { value: slice.map(toItem), nextLink };
  }

  private recover(vault: Vault, name: string): Json {
    const d = this.deletedOrThrow(vault, name);
    vault.deleted.delete(name.toLowerCase());
    vault.secrets.set(name.toLowerCase(), d.record);
    return this.bundle(vault, d.record, d.record.versions.at(-1) as SecretVersion, false);
  }

  // ---------------------------------------------------------------- store helpers

  private addVersion(vault: Vault, name: string, fields: Omit<SecretVersion, 'version' | 'created' | 'updated'>): SecretVersion {
    const key = name.toLowerCase();
    let record = vault.secrets.get(key);
    if (!record) {
      record = { name, versions: [] };
      vault.secrets.set(key, record);
    }
    const now = nowSeconds();
    const created: SecretVersion = { ...fields, version: randomBytes(16).toString('hex'), created: now, updated: now };
    record.versions.push(created);
    return created;
  }

  private findVersion(vault: Vault, name: string, version: string): SecretVersion {
    const record = vault.secrets.get(name.toLowerCase());
    const v = record && (version === '' ? record.versions.at(-1) : record.versions.find((x) => x.version === version.toLowerCase()));
    if (!v) throw secretNotFound(version === '' ? name : `${name}/${version}`);
    return v;
  }

  private softDelete(vault: Vault, name: string): DeletedRecord {
    const key = name.toLowerCase();
    const record = vault.secrets.get(key);
    if (!record) throw secretNotFound(name);
    vault.secrets.delete(key);
    const deleted = { record, deletedDate: nowSeconds() };
    vault.deleted.set(key, deleted);
    return deleted;
  }

  private deletedOrThrow(vault: Vault, name: string): DeletedRecord {
    const d = vault.deleted.get(name.toLowerCase());
    if (!d) throw new HttpError(404, 'SecretNotFound', `Deleted Secret not found`);
    return d;
  }

  private vaultOrThrow(vault: string): Vault {
    const v = this.vaults.get(vault.toLowerCase());
    if (!v) throw new Error(`Unknown vault: ${vault}`);
    return v;
  }

  private bundle(vault: Vault, record: SecretRecord, v: SecretVersion, withValue: boolean): Json {
    const out: Json = {};
    if (withValue) out['value'] = v.value;
    if (v.contentType !== undefined) out['contentType'] = v.contentType;
    out['id'] = `https://${vault.name}.vault.azure.net/secrets/${record.name}/${v.version}`;
    out['attributes'] = attributes(v);
    if (v.tags !== undefined) out['tags'] = v.tags;
    return out;
  }

  /** SecretItem: no value; the id carries the version only when listing versions. */
  private item(vault: Vault, record: SecretRecord, v: SecretVersion, withVersion: boolean): Json {
    const out: Json = {};
    out['id'] = `https://${vault.name}.vault.azure.net/secrets/${record.name}${withVersion ? `/${v.version}` : ''}`;
    out['attributes'] = attributes(v);
    if (v.tags !== undefined) out['tags'] = v.tags;
    if (v.contentType !== undefined) out['contentType'] = v.contentType;
    return out;
  }

  private deletedBundle(vault: Vault, d: DeletedRecord): Json {
    return { ...this.bundle(vault, d.record, d.record.versions.at(-1) as SecretVersion, false), ...deletedFields(vault, d) };
  }

  // ---------------------------------------------------------------- auth, faults, counting

  private count(vault: string, method: string, path: string): void {
    const key = `${vault} ${method} ${path}`;
    const entry = this.counts.get(key);
    if (entry) entry.n++;
    else this.counts.set(key, { vault, method, path, n: 1 });
  }

  /**
   * Admits a request under the rate limit (undefined), or returns the extra headers of its 429:
   * `Retry-After` when the limit sends one.
   */
  private overLimit(vault: string): Record<string, string> | undefined {
    const limit = this.rateLimit;
    if (!limit) return undefined;
    const now = (limit.now ?? Date.now)();
    let times = this.admitted.get(vault);
    if (!times) this.admitted.set(vault, (times = []));
    let expired = 0;
    while (expired < times.length && (times[expired] ?? 0) <= now - limit.windowMs) expired++;
    if (expired > 0) times.splice(0, expired);
    if (times.length < limit.requests) {
      times.push(now);
      return undefined;
    }
    const send = limit.retryAfter === 'always' || (limit.retryAfter === 'sometimes' && this.random() < 0.5);
    if (!send) return {};
    const freeInMs = (times[0] ?? now) + limit.windowMs - now;
    return { 'Retry-After': String(Math.max(1, Math.ceil(freeInMs / 1000))) };
  }

  private latencyFor(vault: string): number {
    let ms = 0;
    for (const f of this.faults) {
      if (f.fault.kind === 'latency' && (f.vault === undefined || f.vault === vault)) ms = Math.max(ms, f.fault.ms);
    }
    return ms;
  }

  /** Finds the first matching fault of the given kinds and consumes one of its `times`. */
  private takeFault(vault: string, kinds: ReadonlySet<KeyVaultFault['kind']>): KeyVaultFault | undefined {
    if (this.faults.length === 0) return undefined;
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i] as ActiveFault;
      if (!kinds.has(f.fault.kind) || (f.vault !== undefined && f.vault !== vault)) continue;
      const probability = 'probability' in f.fault ? f.fault.probability : undefined;
      if (probability !== undefined && !(this.random() < probability)) continue;
      if (f.remaining !== undefined) {
        f.remaining--;
        if (f.remaining <= 0) this.faults.splice(i, 1);
      }
      return f.fault;
    }
    return undefined;
  }

  private cachedCaller(authorization: string | undefined): Caller | undefined {
    if (!authorization) return undefined;
    const caller = this.tokenCache.get(authorization);
    if (caller && caller.exp > Date.now() / 1000) return caller;
    return undefined;
  }

  /** Verifies a bearer token; returns the caller or the reason it was refused. */
  private async verify(authorization: string | undefined): Promise<Caller | string> {
    const match = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization) : null;
    const token = match?.[1];
    if (!token) return 'AKV10000: Request is missing a Bearer or PoP token.';
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'],
        issuer: EMULATOR_ISSUER,
        audience: [RESOURCE, `${RESOURCE}/`],
      });
      const caller: Caller = {
        appid: typeof payload['appid'] === 'string' ? payload['appid'] : '',
        oid: typeof payload['oid'] === 'string' ? payload['oid'] : (payload.sub ?? ''),
        exp: payload.exp ?? 0,
      };
      if (this.tokenCache.size >= TOKEN_CACHE_LIMIT) this.tokenCache.clear();
      this.tokenCache.set(authorization as string, caller);
      return caller;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
        const claim = (err as { claim?: string }).claim;
        if (claim === 'aud') return `AKV10022: Invalid audience. Expected ${RESOURCE}.`;
        if (claim === 'iss') return `AKV10032: Invalid issuer. Expected ${EMULATOR_ISSUER}.`;
      }
      if (code === 'ERR_JWT_EXPIRED') return 'Access token is expired.';
      return 'Access token could not be validated.';
    }
  }
}

interface RequestContext {
  vault: Vault;
  query: URLSearchParams;
  apiVersion: string;
  path: string;
}

const SECRET_EVENT_KINDS: ReadonlySet<string> = new Set<SecretEventKind>(['SecretNewVersionCreated', 'SecretNearExpiry', 'SecretExpired']);
/** Key Vault's throttling message; the service names a reason after it. */
const THROTTLED_MESSAGE =
  'Request was not processed because too many requests were received. Reason: A generic Key Vault throttling condition was hit.';
const NETWORK_KINDS: ReadonlySet<KeyVaultFault['kind']> = new Set(['reset', 'hang']);
const HTTP_KINDS: ReadonlySet<KeyVaultFault['kind']> = new Set(['status', 'firewall', 'rbac', 'policy']);

// ---------------------------------------------------------------- helpers

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

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function normalisePath(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.replace(/\/+$/, '') || '/' : path;
}

function vaultFromHost(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const m = /^([a-z0-9-]+)\.vault\.azure\.net(?::\d+)?$/i.exec(host);
  return m?.[1]?.toLowerCase();
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function toEpoch(d: Date | undefined): number | undefined {
  return d === undefined ? undefined : Math.floor(d.getTime() / 1000);
}

function attributes(v: SecretVersion): Json {
  const out: Json = { enabled: v.enabled };
  if (v.nbf !== undefined) out['nbf'] = v.nbf;
  if (v.exp !== undefined) out['exp'] = v.exp;
  out['created'] = v.created;
  out['updated'] = v.updated;
  out['recoveryLevel'] = RECOVERY_LEVEL;
  out['recoverableDays'] = RECOVERABLE_DAYS;
  return out;
}

function deletedFields(vault: Vault, d: DeletedRecord): Json {
  return {
    recoveryId: `https://${vault.name}.vault.azure.net/deletedsecrets/${d.record.name}`,
    deletedDate: d.deletedDate,
    scheduledPurgeDate: d.deletedDate + RECOVERABLE_DAYS * 24 * 3600,
  };
}

function checkName(name: string): void {
  if (!NAME_RE.test(name)) throw new HttpError(400, 'BadParameter', `The request URI contains an invalid name: ${name}`);
}

function secretNotFound(nameOrId: string): HttpError {
  return new HttpError(404, 'SecretNotFound', `A secret with (name/id) ${nameOrId} was not found in this key vault. ${NOT_FOUND_HINT}`);
}

function methodNotAllowed(method: string): HttpError {
  return new HttpError(405, 'BadParameter', `The requested resource does not support http method '${method}'.`);
}

function routeNotFound(path: string): HttpError {
  return new HttpError(404, 'NotFound', `The requested path '${path}' is not part of the emulated secrets API.`);
}

function notSupported(operation: string): HttpError {
  return new HttpError(501, 'NotImplemented', `The ${operation} operation is not supported by the emulator.`);
}

function expectMethod(method: string, expected: string): true {
  if (method !== expected) throw methodNotAllowed(method);
  return true;
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new HttpError(400, 'BadParameter', `Property ${field} must be a string.`);
  return value;
}

function parseTags(value: unknown): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((t) => typeof t !== 'string')) {
    throw new HttpError(400, 'BadParameter', 'Property tags must be an object of strings.');
  }
  return { ...(value as Record<string, string>) };
}

/** Parses SecretAttributes; `undefined` = not sent, `null` = clear (dates only). */
function parseAttributes(value: unknown): { enabled?: boolean; nbf?: number | null; exp?: number | null } {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new HttpError(400, 'BadParameter', 'Property attributes must be an object.');
  const a = value as Json;
  const out: { enabled?: boolean; nbf?: number | null; exp?: number | null } = {};
  if (a['enabled'] !== undefined && a['enabled'] !== null) {
    if (typeof a['enabled'] !== 'boolean') throw new HttpError(400, 'BadParameter', 'Property attributes.enabled must be a boolean.');
    out.enabled = a['enabled'];
  }
  for (const field of ['nbf', 'exp'] as const) {
    const raw = a[field];
    if (raw === undefined) continue;
    if (raw !== null && (typeof raw !== 'number' || !Number.isFinite(raw))) {
      throw new HttpError(400, 'BadParameter', `Property attributes.${field} must be a number of seconds since the epoch.`);
    }
    out[field] = raw === null ? null : Math.floor(raw);
  }
  return out;
}

function readJson(req: IncomingMessage): Promise<Json | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'RequestTooLarge', 'The request body is too large.'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size === 0) return resolve(undefined);
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          return reject(new HttpError(400, 'BadParameter', 'The request body must be a JSON object.'));
        }
        resolve(parsed as Json);
      } catch {
        reject(new HttpError(400, 'BadParameter', 'The request body is not valid JSON.'));
      }
    });
  });
}

function resetSocket(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

function baseHeaders(): Record<string, string> {
  return {
    'Cache-Control': 'no-cache',
    'x-ms-request-id': randomUUID(),
    'x-ms-keyvault-region': 'local',
    'x-ms-keyvault-service-version': '1.9.0.0-emulator',
    'x-ms-keyvault-network-info': 'conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;',
    'Strict-Transport-Security': 'max-age=31536000;includeSubDomains',
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void {
  writeJson(res, status, body, { ...baseHeaders(), ...extra });
}

function sendError(res: ServerResponse, err: HttpError, extra?: Record<string, string>): void {
  const error: Json = { code: err.code, message: err.message };
  if (err.inner !== undefined) error['innererror'] = { code: err.inner };
  sendJson(res, err.status, { error }, extra);
}

function sendChallenge(res: ServerResponse, message: string): void {
  sendError(res, new HttpError(401, 'Unauthorized', message), { 'WWW-Authenticate': CHALLENGE });
}

function sendFault(res: ServerResponse, fault: KeyVaultFault, vault: string, method: string, path: string, caller: Caller): void {
  const who = `appid=${caller.appid};oid=${caller.oid};iss=${EMULATOR_ISSUER}`;
  const where = `Vault: ${vault};location=local`;
  switch (fault.kind) {
    case 'status': {
      const extra: Record<string, string> = {};
      // A 429 carries Retry-After: 1 unless the fault names another value, or null for none.
      const retryAfter = fault.retryAfterSeconds === null ? undefined : (fault.retryAfterSeconds ?? (fault.status === 429 ? 1 : undefined));
      if (retryAfter !== undefined) extra['Retry-After'] = String(retryAfter);
      const [code, message] =
        fault.status === 429
          ? ['Throttled', THROTTLED_MESSAGE]
          : fault.status === 503
            ? ['ServiceUnavailable', 'The service is temporarily unavailable. Please retry later.']
            : ['InternalServerError', 'An unexpected error occurred while processing the request.'];
      return sendError(res, new HttpError(fault.status, code, message), extra);
    }
    case 'firewall':
      return sendError(
        res,
        new HttpError(
          403,
          'Forbidden',
          `Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\nCaller: ${who}\r\n${where}`,
          'ForbiddenByFirewall',
        ),
      );
    case 'rbac':
      return sendError(
        res,
        new HttpError(
          403,
          'Forbidden',
          `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: ${who}\r\nAction: '${rbacAction(method, path)}'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/local/providers/microsoft.keyvault/vaults/${vault}${path.toLowerCase()}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n${where}\r\n`,
          'ForbiddenByRbac',
        ),
      );
    case 'policy':
      return sendError(
        res,
        new HttpError(
          403,
          'Forbidden',
          `The user, group or application '${who}' does not have secrets ${policyPermission(method, path)} permission on key vault '${vault};location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`,
          'ForbiddenByPolicy',
        ),
      );
    default:
      return sendError(res, new HttpError(500, 'InternalServerError', `Unexpected fault ${fault.kind}`));
  }
}

function policyPermission(method: string, path: string): string {
  if (path.startsWith('/deletedsecrets'))
    return method === 'DELETE' ? 'purge' : method === 'POST' ? 'recover' : method === 'GET' && path === '/deletedsecrets' ? 'list' : 'get';
  if (method === 'PUT' || method === 'PATCH') return 'set';
  if (method === 'DELETE') return 'delete';
  return path === '/secrets' || path.endsWith('/versions') ? 'list' : 'get';
}

function rbacAction(method: string, path: string): string {
  const permission = policyPermission(method, path);
  const actions: Record<string, string> = {
    get: 'Microsoft.KeyVault/vaults/secrets/getSecret/action',
    list: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
    set: 'Microsoft.KeyVault/vaults/secrets/setSecret/action',
    delete: 'Microsoft.KeyVault/vaults/secrets/delete',
    purge: 'Microsoft.KeyVault/vaults/deletedSecrets/delete',
    recover: 'Microsoft.KeyVault/vaults/deletedSecrets/recover/action',
  };
  return actions[permission] ?? 'Microsoft.KeyVault/vaults/secrets/readMetadata/action';
}
