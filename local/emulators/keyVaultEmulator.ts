import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { type Caller, TokenVerifier, sendChallenge } from './keyVaultAuth';
import { HttpError } from './keyVaultErrors';
import { SECRET_EVENT_KINDS, SecretEventPublisher } from './keyVaultEvents';
import { FaultInjector, type SecretRoleAssignment } from './keyVaultFaults';
import { normalisePath, readJson, resetSocket, sendError, vaultFromHost } from './keyVaultHttp';
import { dispatch } from './keyVaultRouter';
import {
  KeyVaultStore,
  SECRET_NAME_RE,
  type SecretVersion,
  type Vault,
  addVersion,
  keyVaultResourceId,
  lookupVersion,
  nowSeconds,
  softDelete,
  toEpoch,
} from './keyVaultStore';
import type {
  EmittedSecretEvent,
  EmulatorEventSubscription,
  EmulatorSecretOptions,
  EmulatorSecretUpdate,
  EventDeliveryAttempt,
  EventDeliveryOutcome,
  InjectedCounts,
  KeyVaultFault,
  KeyVaultRateLimit,
  RequestCountFilter,
  SecretEventKind,
} from './keyVaultTypes';
import { tokenSecretBytes } from './managedIdentityEndpoint';

/**
 * Emulates the Azure Key Vault data-plane secrets API (7.x / 2025-xx api-versions) for
 * several vaults behind one HTTPS server on 127.0.0.1, distinguished by the Host header
 * `{vault}.vault.azure.net`. Speaks the bearer-challenge protocol the SDK expects and only
 * accepts HS256 tokens from the emulated managed-identity endpoint.
 *
 * Composes the parts: store, router and handlers, auth, faults, events and HTTP plumbing
 * (keyVaultStore, -Router, -SecretHandlers, -Auth, -Faults, -Events, -Http); types in keyVaultTypes.
 */
export class KeyVaultEmulator {
  /** TCP port of the HTTPS server on 127.0.0.1. */
  readonly port: number;
  private readonly store: KeyVaultStore;
  private readonly tokens: TokenVerifier;
  private readonly faults = new FaultInjector();
  private readonly events = new SecretEventPublisher();
  private readonly counts = new Map<string, { vault: string; method: string; path: string; n: number }>();
  private readonly sockets = new Set<Socket>();
  /** A `PUT` that creates a version emits its event, as {@link setSecret} does. */
  private readonly onNewVersion = (vault: Vault, name: string, version: SecretVersion): void => {
    this.events.publishNewVersion(vault, name, version);
  };

  private constructor(
    private readonly server: Server,
    key: Uint8Array,
    vaultNames: string[],
    port: number,
  ) {
    this.port = port;
    this.store = new KeyVaultStore(vaultNames);
    this.tokens = new TokenVerifier(key);
  }

  /** Starts the emulator; `vaults` are the vault names (the `{vault}` of `{vault}.vault.azure.net`). */
  static async start(opts: {
    certPem: string;
    keyPem: string;
    port?: number;
    vaults: string[];
    tokenSecret: Uint8Array | string;
  }): Promise<KeyVaultEmulator> {
    // Key Vault naming rules: 3-24 characters, alphanumerics and hyphens, starting with a letter, ending with a letter or digit.
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
    return keyVaultResourceId(vault);
  }

  /**
   * Creates a new version of a secret (purging a soft-deleted one of that name first). With an
   * event subscription set, `eventId` is the id of the `SecretNewVersionCreated` event it emitted.
   */
  setSecret(vault: string, name: string, value: string, opts: EmulatorSecretOptions = {}): { version: string; eventId?: string } {
    const v = this.store.vaultOrThrow(vault);
    if (!SECRET_NAME_RE.test(name)) throw new Error(`Invalid secret name: ${name}`);
    v.deleted.delete(name.toLowerCase());
    const created = addVersion(v, name, {
      value,
      contentType: opts.contentType,
      enabled: opts.enabled ?? true,
      nbf: toEpoch(opts.notBefore),
      exp: toEpoch(opts.expiresOn),
      tags: opts.tags ? { ...opts.tags } : undefined,
    });
    const eventId = this.events.publishNewVersion(v, name, created);
    return eventId === undefined ? { version: created.version } : { version: created.version, eventId };
  }

  /** Changes attributes of one version (`''` = latest), like `PATCH /secrets/{name}/{version}`. */
  updateSecret(vault: string, name: string, version: string, attrs: EmulatorSecretUpdate): void {
    const v = this.store.vaultOrThrow(vault);
    const target = lookupVersion(v, name, version).version;
    if (attrs.contentType !== undefined) target.contentType = attrs.contentType;
    if (attrs.enabled !== undefined) target.enabled = attrs.enabled;
    if (attrs.notBefore !== undefined) target.nbf = toEpoch(attrs.notBefore ?? undefined);
    if (attrs.expiresOn !== undefined) target.exp = toEpoch(attrs.expiresOn ?? undefined);
    if (attrs.tags !== undefined) target.tags = { ...attrs.tags };
    target.updated = nowSeconds(v);
  }

  /**
   * A test control, like the faults: the clock (epoch milliseconds) that stamps what the emulator writes
   * from now on (a new version's `created` and `updated`, by API `PUT` or {@link setSecret}; the `updated` of
   * {@link updateSecret} or an API `PATCH`; a soft delete's `deletedDate`), e.g. `() => Date.now() - 61_000`
   * for versions a minute old already; `null` is the real time again (the default). Versions already
   * written keep their stamps; tokens and rate limits keep the real time.
   */
  setClock(now: (() => number) | null): void {
    this.store.setClock(now);
  }

  /** Soft-deletes a secret (all versions), as `DELETE /secrets/{name}` does. */
  deleteSecret(vault: string, name: string): void {
    softDelete(this.store.vaultOrThrow(vault), name);
  }

  /** Deletes a secret for good (soft delete then purge), as if it had never been there. */
  purgeSecret(vault: string, name: string): void {
    const v = this.store.vaultOrThrow(vault);
    if (v.secrets.has(name.toLowerCase())) softDelete(v, name);
    v.deleted.delete(name.toLowerCase());
  }

  /** Injects a fault for one vault, or for all vaults when `vault` is omitted. Replaces a fault of the same kind and scope. */
  setFault(fault: KeyVaultFault, vault?: string): void {
    this.faults.setFault(fault, vault?.toLowerCase());
  }

  /**
   * Enforces a per-vault request limit ({@link KeyVaultRateLimit}), or removes it (`null`, the
   * default). Setting a limit starts its windows empty.
   * @throws Error when `requests` or `windowMs` is not a positive integer.
   */
  setRateLimit(limit: KeyVaultRateLimit | null): void {
    this.faults.setRateLimit(limit);
  }

  /** The random source of probabilistic faults and `retryAfter: 'sometimes'` (default `Math.random`). */
  setRandomSource(random: () => number): void {
    this.faults.setRandomSource(random);
  }

  /** 429s, status faults and resets the emulator answered on purpose (see {@link InjectedCounts}). */
  injectedCounts(): InjectedCounts {
    return this.faults.injectedCounts();
  }

  /** Removes the fault of this kind set with the same `vault` (or for all vaults when omitted), leaving the others. */
  clearFault(kind: KeyVaultFault['kind'], vault?: string): void {
    this.faults.clearFault(kind, vault?.toLowerCase());
  }

  /**
   * Checks Azure RBAC on the data plane of one vault: once set, a caller (token `oid`) is served only the
   * operations its roles grant (Key Vault Secrets User reads, Secrets Officer writes too) and refused the
   * rest with 403 `ForbiddenByRbac`; `null` turns the check off again (the default). See keyVaultFaults.ts.
   */
  setRoleAssignments(vault: string, assignments: readonly SecretRoleAssignment[] | null): void {
    this.store.vaultOrThrow(vault);
    this.faults.setRoleAssignments(vault.toLowerCase(), assignments);
  }

  /** Removes every injected fault (hung requests stay hung until {@link stop}). */
  clearFaults(): void {
    this.faults.clearFaults();
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
    this.faults.resetCounts();
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
    this.events.abortSubscription();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await Promise.all([closed, ...this.events.pending()]);
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
    this.events.setSubscription(sub);
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
      const v = this.store.vaultOrThrow(vault);
      const record = v.secrets.get(name.toLowerCase());
      if (!record) throw new Error(`Unknown secret: ${vault}/${name}`);
      const wanted = opts.version?.toLowerCase();
      const version = wanted === undefined ? record.versions.at(-1) : record.versions.find((x) => x.version === wanted);
      if (!version) throw new Error(`Unknown version: ${vault}/${name}/${opts.version ?? ''}`);
      resolve(this.events.emit(v, record, version, kind, opts.id));
    });
  }

  /**
   * Delivers an already emitted event again, with the same id and content, to the current subscription
   * (Event Grid's at-least-once delivery can duplicate an event). Resolves with that delivery's outcome.
   *
   * @throws Error (rejection) when the event id is unknown or there is no event subscription.
   */
  redeliver(eventId: string): Promise<EventDeliveryOutcome> {
    return this.events.redeliver(eventId);
  }

  /** Every event emitted while a subscription was set, oldest first. */
  emittedEvents(): EmittedSecretEvent[] {
    return this.events.emittedEvents();
  }

  /** Every HTTP delivery attempt made so far (handshakes excluded), oldest first. */
  eventDeliveries(): EventDeliveryAttempt[] {
    return this.events.eventDeliveries();
  }

  /**
   * Resolves when the latest delivery of `eventId` started so far succeeded (2xx) or gave up
   * (attempts exhausted, subscription replaced, emulator stopped, or handshake failed with `attempts: 0`).
   *
   * @throws Error (rejection) when no delivery of that event id was started.
   */
  whenDelivered(eventId: string): Promise<EventDeliveryOutcome> {
    return this.events.whenDelivered(eventId);
  }

  /** Resolves when no delivery is in progress. */
  whenIdle(): Promise<void> {
    return this.events.whenIdle();
  }

  /** Result of the most recent subscription handshake, or undefined before the first one. */
  lastHandshake(): { ok: boolean; detail: string } | undefined {
    return this.events.lastHandshake();
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

    const vault = vaultName === undefined ? undefined : this.store.find(vaultName);
    if (!vault) {
      // The real service has no such host: DNS would fail. 404 keeps the failure fast and explicit.
      return sendError(res, new HttpError(404, 'VaultNotFound', `No vault is served for host '${req.headers.host ?? ''}'.`));
    }

    const latency = this.faults.latencyFor(vault.name);
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
    const network = this.faults.takeNetworkFault(vault.name);
    if (network === 'reset') {
      // RST rather than FIN so clients see ECONNRESET, as with a dropped load-balancer connection.
      resetSocket(req.socket);
      return;
    }
    if (network === 'hang') return; // never answer; stop() destroys the socket

    const caller = this.tokens.cachedCaller(req.headers.authorization);
    if (caller) {
      this.authorised(req, res, vault, method, path, query, caller);
      return;
    }
    this.tokens.verify(req.headers.authorization).then(
      (verified) => {
        if (res.destroyed) return;
        if (typeof verified === 'string') return sendChallenge(res, verified);
        this.authorised(req, res, vault, method, path, query, verified);
      },
      (err: unknown) => sendError(res, new HttpError(500, 'InternalServerError', String(err))),
    );
  }

  /** The service authenticates before it throttles or authorises, so the rate limit and HTTP faults act here. */
  private authorised(
    req: IncomingMessage,
    res: ServerResponse,
    vault: Vault,
    method: string,
    path: string,
    query: URLSearchParams,
    caller: Caller,
  ): void {
    if (this.faults.refuse(res, vault.name, method, path, caller)) return;
    const needsBody = method === 'PUT' || method === 'PATCH';
    if (!needsBody) {
      dispatch(res, vault, method, path, query, undefined, this.onNewVersion);
      return;
    }
    readJson(req).then(
      (body) => dispatch(res, vault, method, path, query, body, this.onNewVersion),
      (err: unknown) => sendError(res, err instanceof HttpError ? err : new HttpError(400, 'BadParameter', String(err))),
    );
  }

  private count(vault: string, method: string, path: string): void {
    const key = `${vault} ${method} ${path}`;
    const entry = this.counts.get(key);
    if (entry) entry.n++;
    else this.counts.set(key, { vault, method, path, n: 1 });
  }
}
