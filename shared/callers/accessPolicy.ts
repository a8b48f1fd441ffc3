import { hash as digest, timingSafeEqual } from 'node:crypto';
import type { AccessPolicySettings } from '../config';
import { DEFAULT_CALLER_MISSES_PER_MINUTE, DEFAULT_VAULT_ALIAS } from '../config';

/** An authenticated caller, as the policy knows it. */
export interface Caller {
  readonly name: string;
  readonly operator: boolean;
  /** How it proved who it is. */
  readonly method: 'apiKey' | 'bearer';
  /** Bearer: the application (client) id from `azp` / `appid`, lower case. */
  readonly appId?: string;
  /** Bearer: the service principal's object id (`oid`), when the token carries a GUID there. */
  readonly objectId?: string;
  /** API key: the key's id for audit records, the first 12 hex digits of its SHA-256 (never the key). */
  readonly keyId?: string;
  /** Its rate (`rateLimit.requestsPerMinute`), per instance. */
  readonly requestsPerMinute: number;
  /**
   * Its budget of vault misses (`rateLimit.missesPerMinute`: reads the cache could not answer), per
   * instance; the policy sets {@link DEFAULT_CALLER_MISSES_PER_MINUTE} where the entry does not (the
   * one place that default is applied).
   */
  readonly missesPerMinute: number;
}

/** A policy entry found by application id, with the app roles a token must carry one of (none: no role needed). */
export interface AppCaller {
  readonly caller: Caller;
  readonly requiredRoles: readonly string[];
}

/**
 * How many valid API keys the policy remembers (least recently used dropped first), so a known key
 * is looked up instead of hashed. Only keys that matched are kept; an unknown key is always hashed
 * and compared in constant time against every configured hash.
 */
export const KNOWN_API_KEYS = 4_096;

/** Hex digits of an API key's SHA-256 that identify it in audit records: enough to tell keys apart, useless to guess one. */
export const API_KEY_ID_HEX_DIGITS = 12;

interface CompiledCaller {
  readonly name: string;
  readonly operator: boolean;
  readonly requestsPerMinute: number;
  readonly missesPerMinute: number;
  readonly roles: readonly string[];
  readonly appIds: ReadonlySet<string>;
  readonly keyHashes: readonly Buffer[];
  readonly allow: readonly RegExp[];
  readonly deny: readonly RegExp[];
}

/**
 * The subject a policy pattern is matched against: `name` for the default vault, `alias/name` for
 * an aliased one (CONTRACT.md "Callers and the access policy").
 */
export function policySubject(vaultAlias: string, name: string): string {
  return vaultAlias === DEFAULT_VAULT_ALIAS ? name : `${vaultAlias}/${name}`;
}

/**
 * Compiles a `*` glob. `*` stands for any run of characters except `/`, so `erp-*` never reaches
 * into an aliased vault. Matching ignores case because Key Vault names do: a deny of `erp-admin-*`
 * must also stop `ERP-ADMIN-x`.
 */
export function compileGlob(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]*');
  return new RegExp(`^${body}$`, 'i');
}

/**
 * The access policy: who the callers are and what each may read. Deny by default; `deny` wins.
 */
export class AccessPolicy {
  private readonly callers: readonly CompiledCaller[];
  /**
   * Valid API keys seen, each with its caller (frozen), in least-recently-used order. Built per
   * policy: a new policy (a new runtime) starts empty, so no key outlives the policy that accepted it.
   */
  // A true private field: the raw keys stay out of util.inspect, console.log and test diffs of the policy.
  readonly #knownKeys = new Map<string, Caller>();

  constructor(settings: AccessPolicySettings) {
    this.callers = settings.callers.map((c) => ({
      name: c.name,
      operator: c.operator,
      requestsPerMinute: c.rateLimit.requestsPerMinute,
      missesPerMinute: c.rateLimit.missesPerMinute ?? DEFAULT_CALLER_MISSES_PER_MINUTE,
      roles: c.roles,
      appIds: new Set(c.identities.flatMap((i) => ('appId' in i ? [i.appId.toLowerCase()] : []))),
      keyHashes: c.identities.flatMap((i) => ('apiKeySha256' in i ? [Buffer.from(i.apiKeySha256, 'hex')] : [])),
      allow: c.allow.map(compileGlob),
      deny: c.deny.map(compileGlob),
    }));
  }

  /**
   * The caller whose identities include this Entra ID application (client) id, with the app roles
   * its entry requires. `objectId` is the token's `oid`, kept for audit records.
   */
  findByAppId(appId: string, objectId?: string): AppCaller | undefined {
    const id = appId.toLowerCase();
    const found = this.callers.find((c) => c.appIds.has(id));
    if (!found) return undefined;
    return {
      caller: { ...this.toCaller(found, 'bearer'), appId: id, ...(objectId ? { objectId: objectId.toLowerCase() } : {}) },
      requiredRoles: found.roles,
    };
  }

  /**
   * The caller holding this API key. Every configured hash is compared in constant time, and all
   * of them are compared, so timing tells nothing about which (or whether one) matched.
   */
  findByApiKey(apiKey: string): Caller | undefined {
    return this.knownApiKey(apiKey) ?? this.hashedApiKey(apiKey);
  }

  /**
   * The caller of an API key that already proved valid (one of the last {@link KNOWN_API_KEYS}),
   * without hashing it; undefined for any other key, which {@link findByApiKey} must then check.
   */
  knownApiKey(apiKey: string): Caller | undefined {
    const known = this.#knownKeys.get(apiKey);
    if (known !== undefined) {
      // Map keeps insertion order: re-inserting makes this the most recently used.
      this.#knownKeys.delete(apiKey);
      this.#knownKeys.set(apiKey, known);
    }
    return known;
  }

  private hashedApiKey(apiKey: string): Caller | undefined {
    // One-shot hashing: no Hash object per request on the hot path.
    const hash = digest('sha256', apiKey, 'buffer');
    let found: CompiledCaller | undefined;
    for (const caller of this.callers) {
      for (const expected of caller.keyHashes) {
        if (timingSafeEqual(expected, hash) && !found) found = caller;
      }
    }
    if (!found) return undefined;
    const caller: Caller = Object.freeze({ ...this.toCaller(found, 'apiKey'), keyId: hash.toString('hex', 0, API_KEY_ID_HEX_DIGITS / 2) });
    this.#knownKeys.set(apiKey, caller);
    if (this.#knownKeys.size > KNOWN_API_KEYS) {
      const oldest = this.#knownKeys.keys().next();
      if (!oldest.done) this.#knownKeys.delete(oldest.value);
    }
    return caller;
  }

  /** Whether the caller may read this secret: some `allow` matches and no `deny` does. */
  isAllowed(caller: Caller, vaultAlias: string, name: string): boolean {
    const compiled = this.callers.find((c) => c.name === caller.name);
    if (!compiled) return false;
    const subject = policySubject(vaultAlias, name);
    if (compiled.deny.some((re) => re.test(subject))) return false;
    return compiled.allow.some((re) => re.test(subject));
  }

  private toCaller(c: CompiledCaller, method: Caller['method']): Caller {
    return { name: c.name, operator: c.operator, method, requestsPerMinute: c.requestsPerMinute, missesPerMinute: c.missesPerMinute };
  }
}
