import { vaultIdentity } from '../config';
import { openValue, sealingContext, sealValue, SharedCacheDecryptError } from './sealedValue';
import type { VaultSecret } from './vaultGateway';

/**
 * The rows of the shared cache and the rule that says whether one may be served: keys, the entity
 * shape, sealing and opening. Pure (no storage, no clock, no key loading): the Table storage
 * adapter (tableSharedSecretCache.ts) reads and writes the rows and asks these rules.
 *
 * **Keys.** One partition per broker and vault: PartitionKey {@link sharedCachePartition} (the
 * broker's name and the vault as `vaultIdentity` (config.ts) names it: lower-case scheme and host,
 * no default port, ending in `/`), so neither an alias that names another vault on another broker,
 * nor another broker on the same storage and data key, ever finds a row of this one. In it one row
 * per name and slot (RowKey `<lower-case name>@<version or latest>`), with columns `broker`,
 * `vault` (the URI), `name`, `version` (the version the value is), `expiresAt` (ISO 8601),
 * `generation`, `iv`, `ciphertext`, `tag` (binary) and `writtenBy`. The sealed plaintext is the secret's value with its properties
 * (content type, dates, enabled); the AAD binds broker, vault URI, name, slot, version, `expiresAt`
 * and `generation`, so a row moved, relabelled or with its expiry extended does not decrypt.
 *
 * **The rotation mark.** A row `<lower-case name>:rotation` (column `generation`, 128 random bits)
 * outlives the rows it condemns. `SharedSecretCache.delete` (a `SecretNewVersionCreated`
 * event) first writes a fresh `generation` there, then deletes the latest row and its lease. A
 * latest row carries, sealed in its AAD, the generation its filler saw *before* it read the vault,
 * and is served only while that is still the mark's (a missing mark is ''). So a row filled before
 * the event, whether it lands late or is put back from a copy afterwards, is refused (a logged
 * miss), and a row filled after it holds what the vault said after the new version existed.
 *
 * Why a random generation rather than the newest known version: Key Vault versions have no order to
 * compare, and writers never read-modify-write a random value, so concurrent events cannot lose an
 * increment; it only has to differ, the last write wins and every older generation is refused. Why
 * only events move it, not an instance that reads a newer version from the vault: without an event
 * nothing was deleted, the old row stays servable until its own `expiresAt` anyway, and a copy of it
 * put back can be served no longer than that (the expiry is sealed). What it cannot stop: someone
 * who can write the storage account and puts back both an old row and the old mark gets that row
 * served until the row's own `expiresAt` (at most one TTL after its vault read). Pinned versions
 * have no mark (their value never changes); a disabled one goes with its row's expiry.
 *
 * **Expiry.** A row is served until its `expiresAt` (its fill time plus `ttlMs`) and reported
 * with it (`SharedFill.expiresAt`), so an instance that takes it keeps it no longer. *
 * **The accept rule.** A row is served only when {@link rowStanding} finds it `current` (not
 * expired, under the name's mark now) and {@link openRow} opens it; anything else is a miss.
 */

/** Table storage's limit for one binary property; a larger sealed secret is not stored. */
export const MAX_BINARY_BYTES = 64 * 1024;
/** A row may say it expires this much later than this instance's TTL allows (clocks differ). */
export const CLOCK_SKEW_MS = 60_000;

const SECRET_NAME = /^[0-9A-Za-z-]{1,127}$/;
const SECRET_VERSION = /^[0-9a-fA-F]{32}$/;
const VAULT_ALIAS = /^[A-Za-z0-9_-]{1,63}$/;

/**
 * The PartitionKey of a broker's rows of one vault: `[broker, normalised vault URI]` as JSON,
 * base64url encoded (Table keys may not hold `/`, and JSON keeps any two pairs apart).
 */
export function sharedCachePartition(broker: string, vaultUri: string): string {
  return Buffer.from(JSON.stringify([broker, vaultIdentity(vaultUri)]), 'utf8').toString('base64url');
}

/** The columns of a stored copy. A type, not an interface: transactions take entities as records. */
export type RowColumns = {
  broker?: string;
  vault?: string;
  name?: string;
  version?: string;
  expiresAt?: string;
  generation?: string;
  iv?: Uint8Array;
  ciphertext?: Uint8Array;
  tag?: Uint8Array;
  writtenBy?: string;
};

/** A stored copy with its keys, as {@link sealRow} writes it. */
export type RowEntity = { partitionKey: string; rowKey: string } & RowColumns & { iv: Uint8Array; ciphertext: Uint8Array; tag: Uint8Array };

/** The columns of a fill lease (`<row key>:lease`). */
export type LeaseColumns = {
  leaseUntil?: string;
  writtenBy?: string;
};

/** The columns of a name's rotation mark (`<lower-case name>:rotation`). */
export type MarkColumns = {
  generation?: string;
  rotatedAt?: string;
  writtenBy?: string;
};

/** Where one secret lives in the table. */
export interface Slot {
  /** The alias asked with: the served secret's `vault`, and log lines. */
  readonly alias: string;
  /** The vault's URI as `vaultIdentity` (config.ts) normalises it. */
  readonly vaultUri: string;
  readonly partition: string;
  readonly name: string;
  /** `latest` or the lower-cased pinned version. */
  readonly slot: string;
  readonly rowKey: string;
  readonly leaseKey: string;
  /** The rotation mark of the name (used by the latest slot only). */
  readonly markKey: string;
  /** `alias/name@slot`, for log lines. */
  readonly label: string;
}

/** A stored copy that may be served, and until when. */
export interface Opened {
  readonly secret: VaultSecret;
  /** The row's `expiresAt`, ms since the epoch. */
  readonly expiresAt: number;
}

/** The sealed plaintext: the secret without its vault (the row's partition says that). */
type SealedSecret = Omit<VaultSecret, 'vault'>;

/**
 * Where a secret lives, or undefined (a miss, a pass-through) when a key would not be safe to
 * build or the broker has no vault of that alias. `vaultUris` maps alias → normalised vault URI.
 */
export function slotOf(
  broker: string,
  vaultUris: ReadonlyMap<string, string>,
  alias: string,
  name: string,
  version: string | undefined,
): Slot | undefined {
  if (!VAULT_ALIAS.test(alias) || !SECRET_NAME.test(name) || (version !== undefined && !SECRET_VERSION.test(version))) return undefined;
  const vaultUri = vaultUris.get(alias);
  if (!vaultUri) return undefined;
  const lower = name.toLowerCase();
  const slot = version?.toLowerCase() ?? 'latest';
  const rowKey = `${lower}@${slot}`;
  return {
    alias,
    vaultUri,
    partition: sharedCachePartition(broker, vaultUri),
    name,
    slot,
    rowKey,
    leaseKey: `${rowKey}:lease`,
    markKey: `${lower}:rotation`,
    label: `${alias}/${name}@${slot}`,
  };
}

/**
 * Whether a stored copy may be considered before it is opened:
 * - `expired`: past its `expiresAt`, without one, or saying it lives longer than `ttlMs` (plus
 *   {@link CLOCK_SKEW_MS}) from `now`: a row from an instance with a longer TTL or a far-off clock
 *   is not trusted past this one's;
 * - `olderMark`: stored under another rotation mark than the name's `generation` now ('' for none);
 * - `current`: may be served if it opens ({@link openRow}), until `expiresAt`.
 */
export type RowStanding =
  { readonly kind: 'current'; readonly expiresAt: number } | { readonly kind: 'expired' } | { readonly kind: 'olderMark' };

/** The first half of the accept rule: see {@link RowStanding}. */
export function rowStanding(row: RowColumns, generation: string, now: number, ttlMs: number): RowStanding {
  const expiresAt = typeof row.expiresAt === 'string' ? Date.parse(row.expiresAt) : Number.NaN;
  if (!(expiresAt > now) || expiresAt > now + ttlMs + CLOCK_SKEW_MS) return { kind: 'expired' };
  if ((typeof row.generation === 'string' ? row.generation : '') !== generation) return { kind: 'olderMark' };
  return { kind: 'current', expiresAt };
}

/**
 * The second half of the accept rule: decrypts a row of `slot` under `key`; undefined when it
 * holds a disabled secret (never stored, so never served).
 * @throws SharedCacheDecryptError when it does not authenticate (another key, broker, vault, slot,
 *   expiry or mark, or altered) or is not the secret the row and slot name.
 * @throws SharedCacheKeyError when the key is not 32 bytes.
 */
export function openRow(key: Uint8Array, broker: string, slot: Slot, row: RowColumns): VaultSecret | undefined {
  const { iv, ciphertext, tag } = row;
  if (!(iv instanceof Uint8Array) || !(ciphertext instanceof Uint8Array) || !(tag instanceof Uint8Array)) {
    throw new SharedCacheDecryptError('The row has no sealed value');
  }
  const context = sealingContext({
    broker,
    vault: slot.vaultUri,
    name: slot.name,
    slot: slot.slot,
    version: typeof row.version === 'string' ? row.version : '',
    expiresAt: String(row.expiresAt),
    generation: typeof row.generation === 'string' ? row.generation : '',
  });
  const sealed = parseSealed(openValue(key, { iv, ciphertext, tag }, context));
  if (!sealed || sealed.name.toLowerCase() !== slot.name.toLowerCase() || (sealed.version ?? '') !== (row.version ?? '')) {
    throw new SharedCacheDecryptError('The sealed value is not the secret the row names');
  }
  if (slot.slot !== 'latest' && sealed.version?.toLowerCase() !== slot.slot) {
    throw new SharedCacheDecryptError('The sealed value is not the version the row names');
  }
  if (!sealed.enabled) return undefined;
  return { ...sealed, vault: slot.alias };
}

/** Whether `secret` may be stored in `slot`: enabled, the name asked for, and the pinned version asked for. */
export function isStorable(slot: Slot, secret: VaultSecret): boolean {
  if (secret.enabled === false) return false;
  if (slot.slot !== 'latest' && secret.version?.toLowerCase() !== slot.slot) return false;
  return secret.name.toLowerCase() === slot.name.toLowerCase();
}

/** What {@link sealRow} stores besides the secret. */
export interface RowStamp {
  readonly broker: string;
  /** The rotation mark seen before the vault was read ('' for none, and for pinned versions). */
  readonly generation: string;
  /** ISO 8601: the fill time plus the TTL. */
  readonly expiresAt: string;
  readonly writtenBy: string;
}

/**
 * The row of a secret {@link isStorable} allows, sealed under `key` and bound to broker, vault URI,
 * name, slot, version, expiry and mark. The caller checks its size against {@link MAX_BINARY_BYTES}.
 * @throws SharedCacheKeyError when the key is not 32 bytes.
 */
export function sealRow(key: Uint8Array, slot: Slot, secret: VaultSecret, stamp: RowStamp): RowEntity {
  const version = secret.version ?? '';
  const plaintext: SealedSecret = {
    name: secret.name,
    version: secret.version,
    value: secret.value,
    contentType: secret.contentType,
    enabled: secret.enabled,
    notBefore: secret.notBefore,
    expiresOn: secret.expiresOn,
    updatedOn: secret.updatedOn,
  };
  const context = sealingContext({
    broker: stamp.broker,
    vault: slot.vaultUri,
    name: slot.name,
    slot: slot.slot,
    version,
    expiresAt: stamp.expiresAt,
    generation: stamp.generation,
  });
  const sealed = sealValue(key, JSON.stringify(plaintext), context);
  return {
    partitionKey: slot.partition,
    rowKey: slot.rowKey,
    broker: stamp.broker,
    vault: slot.vaultUri,
    name: secret.name,
    version,
    expiresAt: stamp.expiresAt,
    generation: stamp.generation,
    iv: sealed.iv,
    ciphertext: sealed.ciphertext,
    tag: sealed.tag,
    writtenBy: stamp.writtenBy,
  };
}

/** Whether a fill lease is still held at `now` (its `leaseUntil` is later). */
export function isHeld(lease: LeaseColumns, now: number): boolean {
  const until = typeof lease.leaseUntil === 'string' ? Date.parse(lease.leaseUntil) : Number.NaN;
  return until > now;
}

/** ` written by <instance>` for log lines, when the row says. */
export function writerOf(row: RowColumns): string {
  return typeof row.writtenBy === 'string' ? ` written by ${row.writtenBy}` : '';
}

/** The sealed plaintext, when it has the shape {@link sealRow} writes. */
function parseSealed(json: string): SealedSecret | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  const textOrNull = (x: unknown): x is string | null => x === null || typeof x === 'string';
  if (
    typeof v.name !== 'string' ||
    typeof v.value !== 'string' ||
    typeof v.enabled !== 'boolean' ||
    !textOrNull(v.version) ||
    !textOrNull(v.contentType) ||
    !textOrNull(v.notBefore) ||
    !textOrNull(v.expiresOn) ||
    !textOrNull(v.updatedOn)
  ) {
    return undefined;
  }
  return {
    name: v.name,
    version: v.version,
    value: v.value,
    contentType: v.contentType,
    enabled: v.enabled,
    notBefore: v.notBefore,
    expiresOn: v.expiresOn,
    updatedOn: v.updatedOn,
  };
}
