// The public types and constants of the Key Vault emulator (see keyVaultEmulator.ts), apart from its
// parts so that callers and the parts import them without the server.

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
