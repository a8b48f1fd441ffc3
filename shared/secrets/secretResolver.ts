import type { Caller } from '../callers/accessPolicy';
import type { AccessPolicy } from '../callers/accessPolicy';
import type { MissBudget } from '../callers/callerQuota';
import { DEFAULT_VAULT_ALIAS, vaultIdentity } from '../config';
import {
  BrokerError,
  ForbiddenError,
  InvalidRequestError,
  SecretDisabledError,
  SecretNotFoundError,
  VaultError,
  VaultThrottledError,
  VaultUnavailableError,
} from '../errors';
import type { AuditRecorder } from '../audit/auditTrail';
import type { CacheOutcome, LoadContext } from './secretCache';
import { SecretCache } from './secretCache';
import type { SharedSecretCache } from './sharedSecretCache';
import type { SecretMetadata, VaultGateway, VaultSecret } from './vaultGateway';
import { VAULT_CALL_TIMEOUT_MS } from './vaultGateway';
import type { VaultPacerOptions } from './vaultPacer';
import { VAULT_DEADLINE_MS, VaultPacer } from './vaultPacer';
import { VERSION_RELIST_MS, VersionLists } from './versionList';

export { MAX_LISTED_VERSIONS, VERSION_RELIST_MAX_MS, VERSION_RELIST_MS } from './versionList';

/** Key Vault's rule for secret names. */
const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
/** Key Vault versions are 32 hex digits. */
const SECRET_VERSION = /^[0-9a-fA-F]{32}$/;

/** What a caller asks for. */
export interface SecretRef {
  readonly name: string;
  readonly version?: string | undefined;
  readonly vault?: string | undefined;
}

/** Whether a served secret is inside its validity window. Key Vault serves it either way. */
export type Validity = 'valid' | 'expired' | 'not-yet-valid';

/** Where a served value came from: the instance's memory cache (see {@link CacheOutcome}), or the fleet's shared cache. */
export type ResolutionSource = CacheOutcome | 'shared';

export interface Resolution {
  readonly secret: VaultSecret;
  readonly cache: ResolutionSource;
  readonly validity: Validity;
}

export interface SecretResolverDeps {
  readonly vaults: ReadonlyMap<string, VaultGateway>;
  readonly policy: AccessPolicy;
  readonly cache: { ttlSeconds: number; maxEntries: number; staleIfErrorSeconds: number };
  /**
   * Consumers' signing keys (`vault` is an alias): refused to every caller, read only by the broker
   * itself. Like `reserved`, refused by the vault's URI and the name, under whatever alias.
   */
  readonly signingKeys: { readonly vault: string; readonly names: readonly string[] };
  /** More secrets no caller may read, whatever the policy says (the shared cache's data key), by vault alias and name. */
  readonly reserved?: readonly { readonly vault: string; readonly name: string }[];
  /** The fleet's shared second-level cache (`CACHE_SHARED=table`), asked before the vault. */
  readonly shared?: SharedSecretCache;
  /** The cache's clock. Default `Date.now`. */
  readonly now?: () => number;
  /** A number in [0, 1), for TTL jitter (and the pacers' jitter unless `pacing` has its own). Default `Math.random`. */
  readonly random?: () => number;
  /** How each vault's calls are paced and how long a read may wait (its own clock: it sleeps for real). */
  readonly pacing?: VaultPacerOptions;
  /**
   * Each caller's budget of vault misses (`rateLimit.missesPerMinute`), charged once per cold miss
   * (a read of a key the cache holds nothing for), before the vault is asked. None: misses are not
   * limited (the broker's own reads never are).
   */
  readonly misses?: MissBudget;
  /** Where trouble found while reading is reported (a vault that refuses listing versions). Default `console.warn`. */
  readonly log?: (line: string) => void;
}

/**
 * A fresh value in this instance's memory that a caller may read, found without waiting
 * ({@link SecretResolver.hitNow}): what {@link SecretResolver.resolve} would serve as a `hit`.
 */
export interface MemoryHit {
  readonly secret: VaultSecret;
  readonly validity: Validity;
  /** The vault alias asked for (the default when the reference names none). */
  readonly vault: string;
  /** What the record of this access says was served: the version served, else the one asked for, else `latest`. */
  readonly auditVersion: string;
  /**
   * Answers derived from this value (bodies, headers, audit text), kept with its cache entry and
   * dropped with it: a new value (a reload, a rotation) comes with an empty one.
   */
  readonly memo: Map<string, unknown>;
  /** Marks the value used (the cache's LRU order), as {@link SecretResolver.resolve} does on a hit. Call once it is served. */
  served(): void;
}

/** What the resolver keeps with a cached value for {@link SecretResolver.hitNow}. */
interface HitMemo {
  /** Per caller name: whether the policy and the reserved names let it read this key. */
  readonly mayRead: Map<string, boolean>;
  /** `expiresOn` / `notBefore` in ms since the epoch (NaN where absent or unreadable). */
  readonly expiresAt: number;
  readonly notBeforeAt: number;
  readonly derived: Map<string, unknown>;
}

/** Callers whose policy decision one cached value remembers; beyond them, the policy is asked each time. */
const HIT_MEMO_CALLERS = 256;
const VAULT_ALIAS = /^[A-Za-z0-9_-]{1,63}$/;

/** How long "no such secret or version" is remembered, so repeated misses cost one vault read. */
export const NEGATIVE_CACHE_SECONDS = 30;

/** A cached "no such secret or version": kept briefly, never bridged by stale-if-error. */
interface Missing {
  readonly missing: SecretNotFoundError;
  /** Answered from the name's version list, without reading the version: kept {@link VERSION_RELIST_MS} only. */
  readonly listed?: true;
}

type Cached = VaultSecret | Missing;

function isMissing(value: Cached): value is Missing {
  return 'missing' in value;
}

/** The audit fields an outcome fills in. */
interface Outcome {
  status: number;
  code: string;
  cache?: string;
  version?: string | null;
  validity?: Validity;
}

/**
 * Resolves secrets for callers: checks the reference, asks the policy, reads through the cache,
 * and audits every access and refusal (never the value) through the request's audit trail.
 */
export class SecretResolver {
  private readonly secrets: SecretCache<Cached>;
  private readonly listings: SecretCache<SecretMetadata[]>;
  /** Each name's versions: an unknown pinned version is answered 404 from them without a vault read. */
  private readonly versionLists: VersionLists;
  private readonly now: () => number;
  private readonly signingVault: string;
  /** {@link reservedKey} (normalised vault URI and lower-case name) of every secret no caller may read. */
  private readonly reserved: ReadonlySet<string>;
  /** Each configured alias's vault, as {@link vaultIdentity} normalises its URI. */
  private readonly vaultIds: ReadonlyMap<string, string>;
  /**
   * Values that came from the shared cache rather than the vault, to say so when they are served,
   * with the stored copy's expiry: kept in memory no longer than that (one TTL from the vault read).
   */
  private readonly fromShared = new WeakMap<VaultSecret, number | undefined>();
  /** One per vault: all reads of a vault wait out its throttling together. */
  private readonly pacers = new Map<string, VaultPacer>();
  private readonly pacing: VaultPacerOptions;

  constructor(private readonly deps: SecretResolverDeps) {
    this.now = deps.now ?? Date.now;
    this.pacing = { ...(deps.random ? { random: deps.random } : {}), ...deps.pacing };
    this.signingVault = deps.signingKeys.vault;
    this.vaultIds = new Map([...deps.vaults].map(([alias, gateway]) => [alias, vaultIdentity(gateway.uri)]));
    this.reserved = new Set(
      [...deps.signingKeys.names.map((name) => ({ vault: deps.signingKeys.vault, name })), ...(deps.reserved ?? [])].map((r) =>
        reservedKey(this.vaultOf(r.vault), r.name),
      ),
    );
    const ttlMs = deps.cache.ttlSeconds * 1000;
    const options = {
      ttlMs,
      maxEntries: deps.cache.maxEntries,
      staleIfErrorMs: deps.cache.staleIfErrorSeconds * 1000,
      // Outages and throttling may be bridged with a stale value; a definite answer
      // (not found, disabled, access revoked) may not.
      serveStaleOn: (err: unknown) => err instanceof VaultThrottledError || err instanceof VaultUnavailableError,
      now: this.now,
      ...(deps.random ? { random: deps.random } : {}),
    };
    const negative = { ttlMs: Math.min(NEGATIVE_CACHE_SECONDS * 1000, ttlMs), staleIfErrorMs: 0 };
    const listedNegative = { ttlMs: Math.min(VERSION_RELIST_MS, ttlMs), staleIfErrorMs: 0 };
    this.secrets = new SecretCache<Cached>({
      ...options,
      freshnessOf: (value) =>
        isMissing(value)
          ? value.listed
            ? listedNegative
            : negative
          : this.fromShared.has(value)
            ? { ...options, notAfter: this.fromShared.get(value) }
            : undefined,
    });
    this.listings = new SecretCache<SecretMetadata[]>({ ...options, maxEntries: Math.max(deps.vaults.size, 1) });
    this.versionLists = new VersionLists({
      ttlMs,
      maxEntries: deps.cache.maxEntries,
      staleIfErrorMs: options.staleIfErrorMs,
      now: this.now,
      ...(deps.random ? { random: deps.random } : {}),
      ...(deps.log ? { log: deps.log } : {}),
      pacerOf: (gateway) => this.pacerOf(gateway),
    });
  }

  /**
   * One secret with its value (or, for `metadata`, the same without it: the caller still needs
   * read permission, and the vault is asked the same way). `item` is its place in a batch.
   * `deadline` ({@link deadline}, taken once for a whole batch) ends waiting for a throttled or
   * failing vault; by default each read may wait {@link VAULT_DEADLINE_MS}.
   * @throws BrokerError (400 / 403 / 404 / 409 / 429 / 503).
   */
  async resolve(
    caller: Caller,
    ref: SecretRef,
    audit: AuditRecorder,
    options: { operation?: 'resolve' | 'metadata'; item?: number; deadline?: number } = {},
  ): Promise<Resolution> {
    const started = performance.now();
    let outcome: Outcome = { status: 500, code: 'InternalError' };
    try {
      const gateway = this.check(caller, ref);
      const { value, outcome: cache } = await this.read(caller, gateway, ref.name, ref.version, options.deadline);
      if (isMissing(value)) {
        outcome = { status: 404, code: 'SecretNotFound', cache: cache === 'miss' ? 'miss' : 'negative' };
        throw value.missing;
      }
      const validity = this.validity(value);
      const source: ResolutionSource = cache !== 'hit' && cache !== 'stale' && this.fromShared.has(value) ? 'shared' : cache;
      outcome = { status: 200, code: 'OK', cache: source, version: value.version, validity };
      return { secret: value, cache: source, validity };
    } catch (err: unknown) {
      if (err instanceof BrokerError) outcome = { ...outcome, status: err.status, code: err.code };
      throw err;
    } finally {
      audit.record({
        operation: options.operation ?? 'resolve',
        item: options.item,
        vault: ref.vault ?? DEFAULT_VAULT_ALIAS,
        secret: ref.name,
        version: outcome.version ?? ref.version ?? 'latest',
        status: outcome.status,
        code: outcome.code,
        cache: outcome.cache,
        validity: outcome.validity,
        durationMs: performance.now() - started,
      });
    }
  }

  /**
   * What {@link resolve} would serve `caller` for `ref` as a fresh in-memory `hit`, found
   * synchronously and without side effects (call {@link MemoryHit.served} when serving it, and
   * audit it as `resolve` would); undefined for anything else (an invalid reference, a refusal, a
   * miss, a value past its TTL, a cached "not found"), which {@link resolve} must answer.
   */
  hitNow(caller: Caller, ref: SecretRef): MemoryHit | undefined {
    const { name, version } = ref;
    const vault = ref.vault ?? DEFAULT_VAULT_ALIAS;
    if (typeof name !== 'string' || !SECRET_NAME.test(name)) return undefined;
    if (version !== undefined && (typeof version !== 'string' || !SECRET_VERSION.test(version))) return undefined;
    if (typeof vault !== 'string' || !VAULT_ALIAS.test(vault) || !this.deps.vaults.has(vault)) return undefined;
    const key = cacheKey(vault, name, version);
    const entry = this.secrets.peek(key);
    if (entry === undefined) return undefined;
    const value = entry.value;
    if (isMissing(value)) return undefined;
    let memo = entry.memo as HitMemo | undefined;
    if (memo === undefined) {
      memo = {
        mayRead: new Map(),
        expiresAt: value.expiresOn ? Date.parse(value.expiresOn) : NaN,
        notBeforeAt: value.notBefore ? Date.parse(value.notBefore) : NaN,
        derived: new Map(),
      };
      entry.memo = memo;
    }
    // The policy and the reserved names are fixed for the resolver's life, and match names ignoring
    // case as the cache key does: one decision per caller holds for every request of this key.
    let allowed = memo.mayRead.get(caller.name);
    if (allowed === undefined) {
      allowed = this.mayRead(caller, vault, name);
      if (memo.mayRead.size < HIT_MEMO_CALLERS) memo.mayRead.set(caller.name, allowed);
    }
    if (!allowed) return undefined;
    const now = this.now();
    // As validity(): Date.parse's NaN compares false both ways.
    const validity: Validity = memo.expiresAt <= now ? 'expired' : memo.notBeforeAt > now ? 'not-yet-valid' : 'valid';
    return {
      secret: value,
      validity,
      vault,
      auditVersion: value.version ?? version ?? 'latest',
      memo: memo.derived,
      served: () => this.secrets.touch(key, entry),
    };
  }

  /**
   * Every secret the caller may read, across all vaults, without values (signing keys never).
   * A vault that fails fails the whole listing (the caller would otherwise see a silently short list).
   */
  async list(caller: Caller, audit: AuditRecorder): Promise<SecretMetadata[]> {
    const started = performance.now();
    let outcome: Outcome = { status: 500, code: 'InternalError' };
    try {
      const perVault = await Promise.all(
        [...this.deps.vaults.values()].map(async (gateway) => {
          const { value, outcome: cache } = await this.listings.get(`list:${gateway.alias}`, ({ canBridge }) =>
            this.pacerOf(gateway).run(() => gateway.listSecrets(), { failFast: canBridge }),
          );
          return { items: value.filter((s) => this.mayRead(caller, gateway.alias, s.name)), cache };
        }),
      );
      const items = perVault.flatMap((v) => v.items);
      outcome = { status: 200, code: 'OK', cache: perVault.every((v) => v.cache === 'hit') ? 'hit' : 'miss' };
      return items;
    } catch (err: unknown) {
      if (err instanceof BrokerError) outcome = { status: err.status, code: err.code };
      throw err;
    } finally {
      audit.record({
        operation: 'list',
        status: outcome.status,
        code: outcome.code,
        cache: outcome.cache,
        durationMs: performance.now() - started,
      });
    }
  }

  /**
   * A consumer's signing key, from `SIGNING_KEY_VAULT`, for the broker itself: read through the
   * same cache, with no caller and no policy, and never audited as a caller's access.
   * @throws BrokerError
   */
  async readSigningKey(name: string): Promise<VaultSecret> {
    const gateway = this.deps.vaults.get(this.signingVault);
    if (!gateway) throw new InvalidRequestError(`Vault "${this.signingVault}" is not configured`);
    // The broker's own keys may bridge any vault failure but a definite "gone": a firewall or a
    // lost role must not also silence the notifications that report them.
    const { value } = await this.secrets.get(
      cacheKey(this.signingVault, name, undefined),
      (context) => this.load(gateway, name, undefined, context),
      {
        serveStaleOn: (err) => err instanceof VaultError && !(err instanceof SecretNotFoundError) && !(err instanceof SecretDisabledError),
      },
    );
    if (isMissing(value)) throw value.missing;
    return value;
  }

  /**
   * A rotation: `version` (when known) is now the latest of `vault`/`name`. Drops the cached latest
   * value unless it already is that version (so a rotation costs each instance one read, and a
   * redelivered event none), every cached "not found" of the name, the name's version list unless
   * it already holds that version (or is incomplete), and the vault's listing. Pinned
   * versions stay: their values never change, and their TTL still catches a disabled version.
   * A load running now does not store a result this would have dropped.
   * @returns how many cached values were dropped.
   */
  invalidate(vault: string, name: string, version?: string): number {
    const prefix = `${vault}/${name.toLowerCase()}@`;
    const latest = `${prefix}latest`;
    const named = version ? version.toLowerCase() : undefined;
    this.listings.invalidate((key) => key === `list:${vault}`);
    this.versionLists.invalidate(vault, name, version);
    return this.secrets.invalidate((key, value) => {
      if (!key.startsWith(prefix)) return false;
      if (isMissing(value)) return true;
      if (key !== latest) return false;
      return named === undefined || value.version?.toLowerCase() !== named;
    });
  }

  /** When a read that starts now stops waiting for a throttled or failing vault: a batch takes it once for all its items. */
  deadline(): number {
    return (this.pacing.now ?? Date.now)() + (this.pacing.deadlineMs ?? VAULT_DEADLINE_MS);
  }

  /**
   * Reads through the cache. Only a cold miss (the cache holds nothing for the key, not even a stale
   * value; not one joining a load already running) is charged to the caller's miss budget, before
   * anything is asked: past it the caller alone gets 429 `TooManyRequests` (the charge throws before
   * the load is shared). Refreshing a value held past its TTL (within its stale window) is not
   * charged: such refreshes are bounded by `CACHE_MAX_ENTRIES` per TTL whoever asks. An expired
   * "not found" (never bridged) and a value past its stale window count as cold.
   */
  private read(
    caller: Caller,
    gateway: VaultGateway,
    name: string,
    version: string | undefined,
    deadline: number | undefined,
  ): Promise<{ value: Cached; outcome: CacheOutcome }> {
    return this.secrets.get(cacheKey(gateway.alias, name, version), (context) => {
      if (!context.canBridge) this.deps.misses?.takeMiss(caller);
      const shared = this.deps.shared;
      if (!shared) return this.load(gateway, name, version, context, deadline);
      // The fleet's copy first; on a miss one instance reads the vault for all (a "not found" is not shared).
      return shared
        .getOrFill(gateway.alias, name, version, async () => {
          const loaded = await this.load(gateway, name, version, context, deadline);
          if (isMissing(loaded)) throw loaded.missing;
          return loaded;
        })
        .then(
          ({ secret, source, expiresAt }) => {
            if (source === 'hit' || source === 'waited') this.fromShared.set(secret, expiresAt);
            return secret;
          },
          (err: unknown) => {
            if (err instanceof SecretNotFoundError) return { missing: err };
            throw err;
          },
        );
    });
  }

  /**
   * Reads a secret through its vault's pacer: throttling and outages are waited out until the
   * deadline, unless a stale value can answer (then the vault's error comes at once).
   * "No such secret or version" is a result to cache, not an error to retry. A pinned version the
   * name's version list does not hold is answered "not found" without reading it ({@link VersionLists.mayExist}).
   */
  private async load(
    gateway: VaultGateway,
    name: string,
    version: string | undefined,
    context: LoadContext,
    deadline?: number,
  ): Promise<Cached> {
    try {
      if (version !== undefined) {
        // The listing and the read share one deadline.
        deadline ??= this.deadline();
        if (!(await this.versionLists.mayExist(gateway, name, version, context.canBridge, deadline))) {
          const missing = new SecretNotFoundError(`No version "${version}" of secret "${name}" in vault "${gateway.alias}"`);
          return { missing, listed: true };
        }
      }
      return await this.pacerOf(gateway).run(
        (remainingMs) => gateway.getSecret(name, version, Math.min(VAULT_CALL_TIMEOUT_MS, remainingMs)),
        {
          deadline,
          failFast: context.canBridge,
        },
      );
    } catch (err: unknown) {
      if (err instanceof SecretNotFoundError) return { missing: err };
      throw err;
    }
  }

  private pacerOf(gateway: VaultGateway): VaultPacer {
    let pacer = this.pacers.get(gateway.alias);
    if (!pacer) {
      pacer = new VaultPacer(gateway.alias, this.pacing);
      this.pacers.set(gateway.alias, pacer);
    }
    return pacer;
  }

  /**
   * A caller may read neither a name the policy denies nor a reserved secret (signing keys, the
   * shared cache's data key): reserved names are matched by the vault the alias names, so no
   * second alias of that vault reaches them (the settings refuse such twins too).
   */
  private mayRead(caller: Caller, alias: string, name: string): boolean {
    if (this.reserved.has(reservedKey(this.vaultOf(alias), name))) return false;
    return this.deps.policy.isAllowed(caller, alias, name);
  }

  /** The vault an alias names: its normalised URI ({@link vaultIdentity}), or the alias itself when none is configured. */
  private vaultOf(alias: string): string {
    return this.vaultIds.get(alias) ?? `alias:${alias.toLowerCase()}`;
  }

  /** @throws InvalidRequestError / ForbiddenError */
  private check(caller: Caller, ref: SecretRef): VaultGateway {
    if (typeof ref.name !== 'string' || !SECRET_NAME.test(ref.name)) {
      throw new InvalidRequestError('A secret name is 1 to 127 letters, digits and dashes', 'InvalidSecretName');
    }
    if (ref.version !== undefined && (typeof ref.version !== 'string' || !SECRET_VERSION.test(ref.version))) {
      throw new InvalidRequestError('A version is 32 hexadecimal digits', 'InvalidVersion');
    }
    const alias = ref.vault ?? DEFAULT_VAULT_ALIAS;
    if (typeof alias !== 'string' || !/^[A-Za-z0-9_-]{1,63}$/.test(alias)) {
      throw new InvalidRequestError('A vault is an alias of letters, digits, - or _');
    }
    // The policy is asked before the vault list, so a refusal says nothing about what exists;
    // a signing key is refused in the same words, so nothing tells a caller which names are keys.
    if (!this.mayRead(caller, alias, ref.name)) {
      throw new ForbiddenError(
        `Caller "${caller.name}" may not read "${alias === DEFAULT_VAULT_ALIAS ? ref.name : `${alias}/${ref.name}`}"`,
      );
    }
    const gateway = this.deps.vaults.get(alias);
    if (!gateway) throw new InvalidRequestError(`Vault "${alias}" is not configured`);
    return gateway;
  }

  private validity(secret: VaultSecret): Validity {
    const now = this.now();
    if (secret.expiresOn && Date.parse(secret.expiresOn) <= now) return 'expired';
    if (secret.notBefore && Date.parse(secret.notBefore) > now) return 'not-yet-valid';
    return 'valid';
  }
}

/** A reserved secret's key: the vault (normalised URI, or `alias:<alias>` for one not configured) and the lower-case name. */
function reservedKey(vault: string, name: string): string {
  return `${vault} ${name.toLowerCase()}`;
}

/** Cache key: vault alias, lower-cased name (Key Vault names ignore case), version or `latest`. */
export function cacheKey(vault: string, name: string, version: string | undefined): string {
  return `${vault}/${name.toLowerCase()}@${version?.toLowerCase() ?? 'latest'}`;
}
