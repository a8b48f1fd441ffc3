import { randomBytes } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import { AdoptionTracker } from './adoption/adoptionTracker';
import { processAuditLog } from './audit/auditLog';
import { auditSink } from './audit/auditTrail';
import { AccessPolicy } from './callers/accessPolicy';
import { CallerAuthenticator } from './callers/authenticateCaller';
import { CallerQuota } from './callers/callerQuota';
import type { AppConfig, StorageSettings } from './config';
import { DEFAULT_VAULT_ALIAS, loadConfig } from './config';
import type { CacheCoherence } from './events/cacheCoherence';
import type { SecretEventDeps } from './events/handleSecretEvent';
import type { HealthJobDeps } from './health/healthCheckJob';
import type { HealthReportStore } from './health/healthReportStore';
import type { RotationRunner } from './rotation/rotationRunner';
import type { RotationStore } from './rotation/tableRotationStore';
import { RefusalLimiter } from './http/refusalLimiter';
import { ConsumerDirectory } from './notify/consumerDirectory';
import { TTL_JITTER } from './secrets/secretCache';
import { SecretResolver } from './secrets/secretResolver';
import { dataKeyLoader } from './secrets/sealedValue';
import type { SharedSecretCache } from './secrets/sharedSecretCache';
import { VaultGateway } from './secrets/vaultGateway';
import type { Telemetry } from './telemetry';
import { createTelemetry } from './telemetry';

/**
 * The SDK makes no retries of its own: the resolver's per-vault pacer (secrets/vaultPacer.ts) is the
 * one retry loop, so that `Retry-After` is honoured, shared by every key of a vault, and bounded
 * by the request's deadline.
 */
const VAULT_RETRY = { maxRetries: 0 } as const;

/** Everything the functions use, built once per process on first use. */
export interface Runtime {
  readonly config: AppConfig;
  readonly policy: AccessPolicy;
  readonly authenticator: CallerAuthenticator;
  /** Each caller's rate on this instance. */
  readonly quota: CallerQuota;
  /** Refused requests (401 / 403) per client address on this instance, and their `refusals` audit records. */
  readonly refusals: RefusalLimiter;
  readonly resolver: SecretResolver;
  readonly telemetry: Telemetry;
  readonly consumers: ConsumerDirectory;
  /**
   * Version adoption: which caller read which version, recorded per read in memory and written to
   * table `brokeradoption` at most every 30 s (the store is built on first flush or read).
   */
  readonly adoption: AdoptionTracker;
  /** What the Key Vault event handler needs; storage clients are built on first use. */
  events(): SecretEventDeps;
  /** What the health check needs; management clients are built on first use. */
  health(): HealthJobDeps;
  /** Where health reports are kept (read by /api/health). */
  healthStore(): HealthReportStore;
  /**
   * Rotation of Entra application client secrets (docs/rotation.md), built on first use under the
   * rotation identity (`ROTATION_IDENTITY_CLIENT_ID`); undefined when that setting is absent:
   * rotation is off and nothing writes to a vault.
   */
  rotation(): RotationService | undefined;
  /**
   * Reads other instances' invalidations now and applies them to this runtime's cache, as the
   * background poller does every few seconds; resolves with how many it applied.
   * @throws the storage error when the query fails.
   */
  pollCoherence(): Promise<number>;
  /** Stops this runtime's background work (the coherence poller, the adoption flush timer); for hosts that run many runtimes. */
  dispose(): void;
}

/** The rotation runner and the store of its records. */
export interface RotationService {
  readonly runner: RotationRunner;
  readonly store: RotationStore;
}

/** How soon after start-up an instance begins to follow other instances' invalidations. */
const COHERENCE_START_DELAY_MS = 1_000;

let current: Runtime | undefined;

/**
 * The process's runtime, built lazily: settings are validated on first call, the Key Vault and
 * identity libraries are loaded then, and each vault's client is built once.
 * @throws ConfigError when a setting is invalid.
 */
export function getRuntime(): Runtime {
  if (!current) {
    const runtime = createRuntime(loadConfig());
    current = runtime;
    // Windows of refused requests still open at exit get their `refusals` records (after the
    // audit log's own exit hook, registered when the runtime was built, so flushed here).
    process.once('exit', () => {
      try {
        runtime.refusals.dispose();
        processAuditLog().flush();
      } catch {
        // Nothing is left to report to at exit.
      }
    });
    // What callers read since the last flush: written when the event loop drains (an 'exit' hook cannot wait for storage).
    process.once('beforeExit', () => void lastAdoptionFlush(runtime));
  }
  return current;
}

/** What a runtime is built with besides its settings; the defaults are what runs in Azure. */
export interface RuntimeOptions {
  /** Default `DefaultAzureCredential`. */
  readonly credential?: TokenCredential;
  /** The clock of caches and coherence (a simulation of a fleet may run its own). Default `Date.now`. */
  readonly now?: () => number;
  /** Names this instance in coherence rows and leases. Default `WEBSITE_INSTANCE_ID`, else a random id. */
  readonly instanceId?: string;
  /** How long a read may wait out a throttled or failing vault. Default `VAULT_DEADLINE_MS` (20 s). */
  readonly vaultDeadlineMs?: number;
  /**
   * The credential rotations write with (Graph and Key Vault). Default the user-assigned managed
   * identity `ROTATION_IDENTITY_CLIENT_ID` names; never the runtime's read-only `credential`.
   */
  readonly rotationCredential?: TokenCredential;
}

/** Builds a runtime from settings. */
export function createRuntime(config: AppConfig, options: RuntimeOptions = {}): Runtime {
  const { credential } = options;
  // Loaded here rather than at import, so a cold start pays for them once, when first needed.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  const { SecretClient } = require('@azure/keyvault-secrets') as typeof import('@azure/keyvault-secrets');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  const identity = require('@azure/identity') as typeof import('@azure/identity');
  const tokenCredential = credential ?? new identity.DefaultAzureCredential();
  const storageCredential = storageCredentialOf(config.storage, tokenCredential, identity, credential !== undefined);
  const telemetry = createTelemetry(config.appInsightsConnectionString, {
    // In Azure (every plan sets WEBSITE_SITE_NAME) the Functions host records each request itself.
    hostRecordsRequests: config.platform.siteName !== undefined,
    roleName: config.platform.siteName ?? config.platform.serviceName,
    credential: telemetryCredentialOf(config, identity, credential),
  });
  const policy = new AccessPolicy(config.policy);
  const vaults = new Map<string, VaultGateway>();
  for (const vault of config.vaults.values()) {
    const client = new SecretClient(vault.uri, tokenCredential, { retryOptions: VAULT_RETRY });
    vaults.set(vault.alias, new VaultGateway(vault.alias, vault.uri, client, telemetry));
  }
  const instanceId = options.instanceId ?? config.instanceId ?? randomBytes(6).toString('hex');
  const shared = config.sharedCache
    ? sharedCacheOf(config, config.sharedCache.keySecret, vaults, instanceId, options.now, storageCredential)
    : undefined;
  const quota = new CallerQuota();
  const resolver = new SecretResolver({
    vaults,
    misses: quota,
    log: backgroundLog,
    policy,
    cache: config.cache,
    signingKeys: { vault: config.signingKeyVault, names: config.consumers.map((c) => c.signingSecret) },
    ...(config.sharedCache ? { reserved: [{ vault: DEFAULT_VAULT_ALIAS, name: config.sharedCache.keySecret }], shared } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.vaultDeadlineMs !== undefined ? { pacing: { deadlineMs: options.vaultDeadlineMs } } : {}),
  });
  const consumers = new ConsumerDirectory(config.consumers);
  const refusals = new RefusalLimiter(auditSink(telemetry));
  const adoption = new AdoptionTracker({
    store: () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
      const { createTableAdoptionStore } = require('./adoption/tableAdoptionStore') as typeof import('./adoption/tableAdoptionStore');
      return createTableAdoptionStore(config.storage, storageCredential);
    },
    log: backgroundLog,
    ...(options.now ? { now: options.now } : {}),
  });

  // Storage-backed parts load @azure/data-tables, so they are built after start-up, not during it.
  let coherence: CacheCoherence | undefined;
  const coherenceOf = (): CacheCoherence => {
    if (!coherence) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
      const { createTableCacheCoherence } = require('./events/cacheCoherence') as typeof import('./events/cacheCoherence');
      const clock = options.now;
      coherence = createTableCacheCoherence(config.storage, {
        credential: storageCredential,
        log: backgroundLog,
        instanceId,
        ...(clock ? { now: () => new Date(clock()) } : {}),
      });
    }
    return coherence;
  };
  const applyInvalidation = (vault: string, secret: string, version: string | undefined): void => {
    resolver.invalidate(vault, secret, version);
  };
  let disposed = false;
  const coherenceStart = setTimeout(() => {
    if (!disposed) coherenceOf().start(applyInvalidation);
  }, COHERENCE_START_DELAY_MS);
  coherenceStart.unref();

  let rotation: RotationService | undefined;
  const rotationOf = (): RotationService | undefined => {
    const settings = config.rotation;
    if (!settings) return undefined;
    if (!rotation) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
      const { RotationRunner } = require('./rotation/rotationRunner') as typeof import('./rotation/rotationRunner');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
      const { createTableRotationStore } = require('./rotation/tableRotationStore') as typeof import('./rotation/tableRotationStore');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
      const { GraphClient } = require('./graph/graphClient') as typeof import('./graph/graphClient');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
      const { rotationNotifier } = require('./notify/rotationNotifier') as typeof import('./notify/rotationNotifier');
      // The rotation identity writes; the runtime's own identity stays read-only.
      const writer = options.rotationCredential ?? new identity.ManagedIdentityCredential({ clientId: settings.identityClientId });
      const writers = new Map([...config.vaults.values()].map((v) => [v.alias, new SecretClient(v.uri, writer)]));
      const store = createTableRotationStore(config.storage, storageCredential);
      const eventDeps = runtime.events();
      const runner = new RotationRunner({
        graph: new GraphClient({ credential: writer }),
        vaults: writers,
        store,
        adoption,
        notify: rotationNotifier({ ...eventDeps, record: (vault, secret, id) => store.get(vault, secret, id), log: backgroundLog }),
        refresh: async (vault, secret, version) => {
          // As for Key Vault's SecretNewVersionCreated: the shared copy first, then this instance, then the others.
          await shared?.delete(vault, secret);
          resolver.invalidate(vault, secret, version);
          await coherenceOf().publish(vault, secret, version);
        },
        settings: { adoptionWindowHours: settings.adoptionWindowHours, retireAfterHours: settings.retireAfterHours },
        targets: settings.targets,
        log: backgroundLog,
        ...(options.now ? { now: () => new Date(options.now?.() ?? Date.now()) } : {}),
      });
      rotation = { runner, store };
    }
    return rotation;
  };

  let events: SecretEventDeps | undefined;
  let health: HealthJobDeps | undefined;
  let healthStore: HealthReportStore | undefined;
  const healthStoreOf = (): HealthReportStore => {
    if (!healthStore) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
      const { createTableHealthReportStore } = require('./health/healthReportStore') as typeof import('./health/healthReportStore');
      healthStore = createTableHealthReportStore(config.storage, storageCredential);
    }
    return healthStore;
  };
  const runtime: Runtime = {
    config,
    policy,
    authenticator: new CallerAuthenticator(policy, config.auth),
    quota,
    refusals,
    resolver,
    telemetry,
    consumers,
    adoption,
    events: () => {
      if (!events) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
        const { createTableDeliveryLedger } = require('./notify/deliveryLedger') as typeof import('./notify/deliveryLedger');
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
        const { EventGridTopicPublisher } = require('./notify/eventGridTopic') as typeof import('./notify/eventGridTopic');
        events = {
          vaults: config.vaults,
          resolver,
          coherence: coherenceOf(),
          ...(shared ? { shared } : {}),
          consumers,
          ledger: createTableDeliveryLedger(config.storage, storageCredential),
          telemetry,
          topic: config.notifyEventGridEndpoint ? new EventGridTopicPublisher(config.notifyEventGridEndpoint, tokenCredential) : undefined,
          ...(config.rotation
            ? {
                rotation: () => {
                  const service = rotationOf();
                  return (
                    service && {
                      start: service.runner.start.bind(service.runner),
                      active: service.store.active.bind(service.store),
                      rotationIdOfVersion: service.runner.rotationIdOfVersion.bind(service.runner),
                    }
                  );
                },
              }
            : {}),
        };
      }
      return events;
    },
    healthStore: healthStoreOf,
    rotation: rotationOf,
    pollCoherence: () => coherenceOf().pollOnce(applyInvalidation),
    dispose: () => {
      disposed = true;
      clearTimeout(coherenceStart);
      coherence?.stop();
      refusals.dispose();
      adoption.dispose();
    },
    health: () => {
      if (!health) {
        const eventDeps = runtime.events();
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
        const { createArmManagementReader } = require('./health/managementChecks') as typeof import('./health/managementChecks');
        const anyResourceId = [...config.vaults.values()].some((v) => v.resourceId);
        health = {
          config,
          gateways: vaults,
          management: anyResourceId ? createArmManagementReader(tokenCredential) : undefined,
          store: healthStoreOf(),
          consumers,
          ledger: eventDeps.ledger,
          resolver,
          topic: eventDeps.topic,
          telemetry,
          adoption,
          ...(config.rotation ? { rotation: () => rotationOf() } : {}),
          holder: `${instanceId}:${process.pid}`,
        };
      }
      return health;
    },
  };
  return runtime;
}

/**
 * The fleet's shared cache (`CACHE_SHARED=table`). Its data key is read from the default vault
 * once, on first use; rows live no longer than the shortest memory TTL (jitter included), and an
 * instance that takes a row keeps it only until the row's own expiry, so a value is never kept
 * longer than one TTL after it was read from the vault.
 */
function sharedCacheOf(
  config: AppConfig,
  keySecret: string,
  vaults: ReadonlyMap<string, VaultGateway>,
  instanceId: string,
  now: (() => number) | undefined,
  credential: TokenCredential,
): SharedSecretCache {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  const shared = require('./secrets/tableSharedSecretCache') as typeof import('./secrets/tableSharedSecretCache');
  const { createTableSharedSecretCache, LOCAL_BROKER } = shared;
  const keyVault = vaults.get(DEFAULT_VAULT_ALIAS);
  return createTableSharedSecretCache(config.storage, {
    credential,
    // Rows are keyed and sealed by vault URI and broker, never by alias: two apps on one storage
    // account and data key (or an alias remapped on one of them) never read each other's rows.
    vaults: new Map([...vaults].map(([alias, gateway]) => [alias, gateway.uri])),
    broker: config.platform.siteName ?? LOCAL_BROKER,
    dataKey: dataKeyLoader(async () => {
      if (!keyVault) throw new Error(`CACHE_SHARED_KEY_SECRET: the default vault (KEY_VAULT_URI) holds the data key, and none is set`);
      return (await keyVault.getSecret(keySecret)).value;
    }),
    ttlMs: Math.floor(config.cache.ttlSeconds * 1000 * (1 - TTL_JITTER)),
    instanceId,
    log: backgroundLog,
    ...(now ? { now } : {}),
  });
}

/**
 * Where background loops (cache coherence) report trouble: there is no invocation to log to, and
 * the Functions host collects the worker's console output.
 */
function backgroundLog(line: string): void {
  // eslint-disable-next-line no-console -- see above
  console.warn(line);
}

/** How long a shutdown waits for the last adoption flush (storage may be unreachable, and its SDK retries). */
const LAST_FLUSH_MS = 3_000;

/** Writes what callers read since the last flush, waiting at most {@link LAST_FLUSH_MS}; a failure is logged. */
async function lastAdoptionFlush(runtime: Runtime): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      backgroundLog(`adoption: last flush still running after ${LAST_FLUSH_MS / 1000} s; not waited for`);
      resolve();
    }, LAST_FLUSH_MS);
    timer.unref();
  });
  const flushed = runtime.adoption.flush().catch((err: unknown) => backgroundLog(`adoption: last flush failed: ${asMessage(err)}`));
  await Promise.race([flushed, timeout]);
  clearTimeout(timer);
}

function asMessage(err: unknown): string {
  return err instanceof Error ? (err.message.split('\n')[0] ?? '').slice(0, 200) : 'non-error value thrown';
}

/** Writes the open windows' `refusals` audit records and what callers read (version adoption), and sends what telemetry still holds; call before the process exits. */
export async function flushRuntime(): Promise<void> {
  current?.refusals.dispose();
  if (current) await lastAdoptionFlush(current);
  await current?.telemetry.flush();
}

/**
 * The credential telemetry is sent with under `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`: the
 * managed identity it names (the system-assigned one without `ClientId`), as the Functions host
 * reads the same setting; a credential given to the runtime wins. Undefined: no Entra token.
 */
function telemetryCredentialOf(
  config: AppConfig,
  identity: typeof import('@azure/identity'),
  given: TokenCredential | undefined,
): TokenCredential | undefined {
  const auth = config.appInsightsAuthentication;
  if (!auth || !config.appInsightsConnectionString) return undefined;
  if (given) return given;
  return auth.clientId ? new identity.ManagedIdentityCredential({ clientId: auth.clientId }) : new identity.ManagedIdentityCredential();
}

/**
 * The credential of identity-based storage: the runtime's own, unless `AzureWebJobsStorage__clientId`
 * or `__managedIdentityResourceId` names a user-assigned identity (and no credential was given).
 */
function storageCredentialOf(
  storage: StorageSettings,
  runtimeCredential: TokenCredential,
  identity: typeof import('@azure/identity'),
  given: boolean,
): TokenCredential {
  if (given || storage.kind !== 'identity') return runtimeCredential;
  if (storage.clientId) return new identity.DefaultAzureCredential({ managedIdentityClientId: storage.clientId });
  if (storage.resourceId) return new identity.DefaultAzureCredential({ managedIdentityResourceId: storage.resourceId });
  return runtimeCredential;
}
