import type { Caller } from '../callers/accessPolicy';
import type { AccessPolicy } from '../callers/accessPolicy';
import { DEFAULT_VAULT_ALIAS } from '../config';
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
import type { Telemetry } from '../telemetry';
import type { CacheOutcome } from './secretCache';
import { SecretCache } from './secretCache';
import type { SecretMetadata, VaultGateway, VaultSecret } from './vaultGateway';

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

export interface Resolution {
  readonly secret: VaultSecret;
  readonly cache: CacheOutcome;
  readonly validity: Validity;
}

/** Where audit lines go (an InvocationContext's `log`, say). Never given a value. */
export type AuditLog = (line: string) => void;

export interface SecretResolverDeps {
  readonly vaults: ReadonlyMap<string, VaultGateway>;
  readonly policy: AccessPolicy;
  readonly telemetry: Telemetry;
  readonly cache: { ttlSeconds: number; maxEntries: number; staleIfErrorSeconds: number };
  readonly now?: () => number;
}

type Operation = 'resolve' | 'metadata' | 'list';

/**
 * Resolves secrets for callers: checks the reference, asks the policy, reads through the cache,
 * and audits every access and refusal (without the value) to the log and to telemetry.
 */
export class SecretResolver {
  private readonly secrets: SecretCache<VaultSecret>;
  private readonly listings: SecretCache<SecretMetadata[]>;
  private readonly now: () => number;

  constructor(private readonly deps: SecretResolverDeps) {
    this.now = deps.now ?? Date.now;
    const options = {
      ttlMs: deps.cache.ttlSeconds * 1000,
      maxEntries: deps.cache.maxEntries,
      staleIfErrorMs: deps.cache.staleIfErrorSeconds * 1000,
      // Outages and throttling may be bridged with a stale value; a definite answer
      // (not found, disabled, access revoked) may not.
      serveStaleOn: (err: unknown) => err instanceof VaultThrottledError || err instanceof VaultUnavailableError,
      now: this.now,
    };
    this.secrets = new SecretCache<VaultSecret>(options);
    this.listings = new SecretCache<SecretMetadata[]>({ ...options, maxEntries: Math.max(deps.vaults.size, 1) });
  }

  /**
   * One secret with its value (or, for `metadata`, the same without it: the caller still needs
   * read permission, and the vault is asked the same way).
   * @throws BrokerError (400 / 403 / 404 / 409 / 429 / 503).
   */
  async resolve(caller: Caller, ref: SecretRef, audit: AuditLog, operation: 'resolve' | 'metadata' = 'resolve'): Promise<Resolution> {
    const started = performance.now();
    const vault = ref.vault ?? DEFAULT_VAULT_ALIAS;
    let outcome: { status: number; code: string; cache?: CacheOutcome; version?: string | null; validity?: Validity } = {
      status: 500,
      code: 'InternalError',
    };
    try {
      const gateway = this.check(caller, ref);
      const key = cacheKey(gateway.alias, ref.name, ref.version);
      const { value, outcome: cache } = await this.secrets.get(key, () => gateway.getSecret(ref.name, ref.version), {
        immutable: ref.version !== undefined,
      });
      const validity = this.validity(value);
      outcome = { status: 200, code: 'OK', cache, version: value.version, validity };
      return { secret: value, cache, validity };
    } catch (err: unknown) {
      if (err instanceof BrokerError) outcome = { status: err.status, code: err.code };
      throw err;
    } finally {
      this.audit(audit, operation, caller, vault, ref.name, ref.version, outcome, performance.now() - started);
    }
  }

  /**
   * Every secret the caller may read, across all vaults, without values.
   * A vault that fails fails the whole listing (the caller would otherwise see a silently short list).
   */
  async list(caller: Caller, audit: AuditLog): Promise<SecretMetadata[]> {
    const started = performance.now();
    let outcome: { status: number; code: string; cache?: CacheOutcome } = { status: 500, code: 'InternalError' };
    try {
      const perVault = await Promise.all(
        [...this.deps.vaults.values()].map(async (gateway) => {
          const { value, outcome: cache } = await this.listings.get(`list:${gateway.alias}`, () => gateway.listSecrets());
          return { items: value.filter((s) => this.deps.policy.isAllowed(caller, gateway.alias, s.name)), cache };
        }),
      );
      const items = perVault.flatMap((v) => v.items);
      outcome = { status: 200, code: 'OK', cache: perVault.every((v) => v.cache === 'hit') ? 'hit' : 'miss' };
      return items;
    } catch (err: unknown) {
      if (err instanceof BrokerError) outcome = { status: err.status, code: err.code };
      throw err;
    } finally {
      this.audit(audit, 'list', caller, '*', '*', undefined, outcome, performance.now() - started);
    }
  }

  /**
   * A secret the broker needs for itself (a consumer's signing key): read through the same cache,
   * with no caller and no policy, and never audited as a caller's access.
   * @throws BrokerError
   */
  async readOwn(vault: string, name: string): Promise<VaultSecret> {
    const gateway = this.deps.vaults.get(vault);
    if (!gateway) throw new InvalidRequestError(`Vault "${vault}" is not configured`);
    // The broker's own keys may bridge any vault failure but a definite "gone": a firewall or a
    // lost role must not also silence the notifications that report them.
    const { value } = await this.secrets.get(cacheKey(vault, name, undefined), () => gateway.getSecret(name), {
      serveStaleOn: (err) => err instanceof VaultError && !(err instanceof SecretNotFoundError) && !(err instanceof SecretDisabledError),
    });
    return value;
  }

  /** Drops every cached version of a secret (all versions: a rotation changes which is latest). */
  invalidate(vault: string, name: string): number {
    const prefix = `${vault}/${name.toLowerCase()}@`;
    this.listings.invalidate((key) => key === `list:${vault}`);
    return this.secrets.invalidate((key) => key.startsWith(prefix));
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
    // The policy is asked before the vault list, so a refusal says nothing about what exists.
    if (!this.deps.policy.isAllowed(caller, alias, ref.name)) {
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

  private audit(
    log: AuditLog,
    operation: Operation,
    caller: Caller,
    vault: string,
    name: string,
    requestedVersion: string | undefined,
    outcome: { status: number; code: string; cache?: CacheOutcome; version?: string | null; validity?: Validity },
    durationMs: number,
  ): void {
    const version = outcome.version ?? requestedVersion ?? 'latest';
    const properties = {
      operation,
      caller: caller.name,
      authMethod: caller.method,
      vault,
      secret: name,
      version,
      cache: outcome.cache ?? 'none',
      outcome: outcome.status < 400 ? 'allowed' : outcome.status === 403 ? 'denied' : 'failed',
      status: outcome.status,
      code: outcome.code,
      validity: outcome.validity ?? 'n/a',
    };
    log(
      `audit ${operation} caller=${caller.name} vault=${vault} secret=${name} version=${version} ` +
        `status=${outcome.status} code=${outcome.code} cache=${properties.cache} validity=${properties.validity} ms=${durationMs.toFixed(1)}`,
    );
    this.deps.telemetry.trackEvent(outcome.status === 403 ? 'SecretAccessDenied' : 'SecretAccess', properties, { durationMs });
  }
}

/** Cache key: vault alias, lower-cased name (Key Vault names ignore case), version or `latest`. */
export function cacheKey(vault: string, name: string, version: string | undefined): string {
  return `${vault}/${name.toLowerCase()}@${version?.toLowerCase() ?? 'latest'}`;
}
