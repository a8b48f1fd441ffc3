import type { VaultSecret } from './vaultGateway';

/**
 * Where {@link SharedSecretCache.getOrFill} found a secret:
 * - `hit`: a stored copy was there, no vault read;
 * - `waited`: another instance was reading the vault; this one waited and took the copy it stored;
 * - `filled`: this instance read the vault and stored the copy for the others;
 * - `loaded`: this instance read the vault and stored nothing (storage failed, the other reader did
 *   not deliver in time, the secret is disabled, or the secret changed while it was read).
 */
export type SharedCacheSource = 'hit' | 'waited' | 'filled' | 'loaded';

/** A secret and where it came from, for telemetry and the audit trail. */
export interface SharedFill {
  readonly secret: VaultSecret;
  readonly source: SharedCacheSource;
  /**
   * For `hit` and `waited`: when the stored copy stops being served (ms since the epoch). A copy
   * kept in memory from it must expire then too, not a fresh TTL later: one TTL from the vault
   * read, on every instance.
   */
  readonly expiresAt?: number;
}

/**
 * The second-level cache that instances of the function app share (`CACHE_SHARED=table`): what
 * one instance read from Key Vault, the others take from storage instead of asking the vault
 * again, so a cold fleet costs about one vault read per secret.
 *
 * Values are stored encrypted (AES-256-GCM under the data key from `CACHE_SHARED_KEY_SECRET`) and
 * bound to this broker, the vault's URI (never the alias: each broker maps its aliases on its own),
 * name, version, expiry and the secret's rotation mark; never in plaintext, and a disabled secret never.
 * Reading never fails a caller's request: a storage failure, an expired or undecryptable copy is a
 * miss, logged, and the caller reads the vault as it would without this cache.
 *
 * `vault` is the vault alias, which the cache turns into the URI this broker configures for it (an
 * alias it does not know passes through), `version` the pinned version or undefined for the
 * latest; names and versions compare without case, as in Key Vault.
 */
export interface SharedSecretCache {
  /**
   * The stored copy, or undefined when there is none, it expired, it was stored before the
   * secret's latest new version (its rotation mark), or it cannot be decrypted. Never throws.
   */
  get(vault: string, name: string, version: string | undefined): Promise<VaultSecret | undefined>;
  /**
   * Deletes the stored latest version of `name` (and any fill under way for it), so that instances
   * told of a new version afterwards read the vault, not the old copy, and moves the secret's
   * rotation mark on first, so that a copy stored before (put back, or landing late) is refused
   * too. Pinned versions stay: their values do not change.
   * @throws the storage error (other than 404), so the event that asked can be retried.
   */
  delete(vault: string, name: string): Promise<void>;
  /**
   * The stored copy, or else the vault's answer through `load`, read by one instance for the whole
   * fleet: on a miss the first instance takes a short fill lease, calls `load` and stores the
   * result; the others wait for that copy (polling briefly) and fall back to `load` themselves if
   * it does not come. Storage failures fall back to `load`. The only way to store a copy: it is
   * sealed under the rotation mark read before `load` ran, and its write loses to a concurrent
   * {@link delete}, so a value read before a new-version event is never served after it.
   * @throws whatever `load` throws (the vault's errors), unchanged.
   */
  getOrFill(vault: string, name: string, version: string | undefined, load: () => Promise<VaultSecret>): Promise<SharedFill>;
}
