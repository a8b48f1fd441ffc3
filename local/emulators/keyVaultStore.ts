// The Key Vault emulator's store: its vaults, each with its secrets (every version kept) and its
// soft-deleted secrets, and the operations on them that know nothing of HTTP.
import { randomBytes } from 'node:crypto';
import { deletedSecretNotFound, secretNotFound } from './keyVaultErrors';
import { EMULATOR_RESOURCE_GROUP, EMULATOR_SUBSCRIPTION_ID } from './keyVaultTypes';

export interface SecretVersion {
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

export interface SecretRecord {
  /** Casing of the first creation; Key Vault names are case-insensitive. */
  name: string;
  /** Creation order; the last one is "latest". */
  versions: SecretVersion[];
}

export interface DeletedRecord {
  record: SecretRecord;
  deletedDate: number;
}

export interface Vault {
  name: string;
  secrets: Map<string, SecretRecord>;
  deleted: Map<string, DeletedRecord>;
  /** The emulator's clock, shared by its vaults: the `created`/`updated` of the versions it writes. */
  clock: EmulatorClock;
}

/** Milliseconds since the epoch, as `Date.now`; a test may set it elsewhere (KeyVaultEmulator.setClock). */
export interface EmulatorClock {
  now: () => number;
}

/** Key Vault object names: 1-127 characters, `^[0-9a-zA-Z-]+$`. */
export const SECRET_NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
/** The vaults' soft-delete retention (Key Vault's default, 90 days). */
export const RECOVERABLE_DAYS = 90;

/** The emulated vaults, keyed on their lower-cased names. */
export class KeyVaultStore {
  private readonly vaults = new Map<string, Vault>();
  /** The real time unless {@link setClock} set another. */
  private readonly clock: EmulatorClock = { now: Date.now };

  constructor(vaultNames: string[]) {
    for (const name of vaultNames) {
      this.vaults.set(name.toLowerCase(), { name: name.toLowerCase(), secrets: new Map(), deleted: new Map(), clock: this.clock });
    }
  }

  /** Sets the clock of every vault (`null`: the real time again). */
  setClock(now: (() => number) | null): void {
    this.clock.now = now ?? Date.now;
  }

  /** The vault of that (already lower-cased) name, or undefined when none is served. */
  find(name: string): Vault | undefined {
    return this.vaults.get(name);
  }

  /** @throws Error when no vault of that name (any casing) is served. */
  vaultOrThrow(vault: string): Vault {
    const v = this.vaults.get(vault.toLowerCase());
    if (!v) throw new Error(`Unknown vault: ${vault}`);
    return v;
  }
}

/**
 * Azure resource id of a vault, e.g.
 * `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/Microsoft.KeyVault/vaults/demo`.
 */
export function keyVaultResourceId(vault: string): string {
  return `/subscriptions/${EMULATOR_SUBSCRIPTION_ID}/resourceGroups/${EMULATOR_RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/${vault.toLowerCase()}`;
}

/** Adds a version to a secret, creating the secret (with this casing of its name) when it is new. */
export function addVersion(vault: Vault, name: string, fields: Omit<SecretVersion, 'version' | 'created' | 'updated'>): SecretVersion {
  const key = name.toLowerCase();
  let record = vault.secrets.get(key);
  if (!record) {
    record = { name, versions: [] };
    vault.secrets.set(key, record);
  }
  const now = nowSeconds(vault);
  const created: SecretVersion = { ...fields, version: randomBytes(16).toString('hex'), created: now, updated: now };
  record.versions.push(created);
  return created;
}

/**
 * A live secret and one of its versions (`''` = latest).
 * @throws HttpError 404 `SecretNotFound` when the secret or the version does not exist.
 */
export function lookupVersion(vault: Vault, name: string, version: string): { record: SecretRecord; version: SecretVersion } {
  const record = vault.secrets.get(name.toLowerCase());
  const v = record && (version === '' ? record.versions.at(-1) : record.versions.find((x) => x.version === version.toLowerCase()));
  if (!record || !v) throw secretNotFound(version === '' ? name : `${name}/${version}`);
  return { record, version: v };
}

/** Moves a live secret (all versions) to the deleted ones. @throws HttpError 404 when there is no such live secret. */
export function softDelete(vault: Vault, name: string): DeletedRecord {
  const key = name.toLowerCase();
  const record = vault.secrets.get(key);
  if (!record) throw secretNotFound(name);
  vault.secrets.delete(key);
  const deleted = { record, deletedDate: nowSeconds(vault) };
  vault.deleted.set(key, deleted);
  return deleted;
}

/** @throws HttpError 404 when there is no such deleted secret. */
export function deletedOrThrow(vault: Vault, name: string): DeletedRecord {
  const d = vault.deleted.get(name.toLowerCase());
  if (!d) throw deletedSecretNotFound();
  return d;
}

/** Moves a deleted secret back to the live ones. @throws HttpError 404 when there is no such deleted secret. */
export function recoverDeleted(vault: Vault, name: string): DeletedRecord {
  const d = deletedOrThrow(vault, name);
  vault.deleted.delete(name.toLowerCase());
  vault.secrets.set(name.toLowerCase(), d.record);
  return d;
}

/** Forgets a deleted secret for good. @throws HttpError 404 when there is no such deleted secret. */
export function purgeDeleted(vault: Vault, name: string): void {
  deletedOrThrow(vault, name);
  vault.deleted.delete(name.toLowerCase());
}

/** Now in epoch seconds, on the vault's clock when given one (else the real time). */
export function nowSeconds(vault?: Pick<Vault, 'clock'>): number {
  return Math.floor((vault?.clock.now() ?? Date.now()) / 1000);
}

export function toEpoch(d: Date | undefined): number | undefined {
  return d === undefined ? undefined : Math.floor(d.getTime() / 1000);
}
