import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { odata } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createTableClient, describeStorageError as describe, ensureTable, tableErrorStatus } from '../storage/tableStorage';
import { openValue, sealingContext, sealValue, SharedCacheDecryptError } from './sealedValue';
import type { SharedCacheSource, SharedFill, SharedSecretCache } from './sharedSecretCache';
import type { VaultSecret } from './vaultGateway';

/** Table of the shared cache in `AzureWebJobsStorage`. */
export const SHARED_CACHE_TABLE = 'brokersharedcache';
/** How long an instance may take to read the vault for the fleet before the others read it themselves. */
export const DEFAULT_FILL_LEASE_MS = 5_000;
/**
 * When a waiting instance first looks for the copy the lease holder stores; each later look comes
 * twice as late (up to {@link MAX_FILL_POLL_MS}), each delay moved at random by ±50 %. A fleet that
 * missed together (200 instances × 50 secrets) thus sends storage a few thousand reads per second
 * that spread out, not tens of thousands in lockstep.
 */
export const DEFAULT_FILL_POLL_MS = 100;
/** The longest delay between two looks of a waiting instance. */
export const MAX_FILL_POLL_MS = 1_000;
/** One storage call may take this long before the cache gives up on it and reads the vault. */
export const DEFAULT_STORAGE_TIMEOUT_MS = 2_000;
/** Table storage's limit for one binary property; a larger sealed secret is not stored. */
const MAX_BINARY_BYTES = 64 * 1024;
/** A row may say it expires this much later than this instance's TTL allows (clocks differ). */
const CLOCK_SKEW_MS = 60_000;
/** The lease's `leaseUntil` once its holder is done: any time in the past frees it. */
const RELEASED = new Date(0).toISOString();

const SECRET_NAME = /^[0-9A-Za-z-]{1,127}$/;
const SECRET_VERSION = /^[0-9a-fA-F]{32}$/;
const VAULT_ALIAS = /^[A-Za-z0-9_-]{1,63}$/;

/** Options of {@link createTableSharedSecretCache}. */
export interface TableSharedSecretCacheOptions {
  /** Serves identity-based storage. Default `DefaultAzureCredential`. */
  readonly credential?: TokenCredential;
  /**
   * The data key (32 bytes). The caller reads `CACHE_SHARED_KEY_SECRET` from Key Vault once and
   * caches it (`dataKeyLoader` of sealedValue.ts); a rejection is logged and counts as a miss.
   */
  readonly dataKey: () => Promise<Buffer>;
  /**
   * How long a stored copy is served: never longer than the in-memory TTL (`CACHE_TTL_SECONDS`),
   * so the shared cache keeps no value longer than one instance would. 0 or less turns it off.
   */
  readonly ttlMs: number;
  /** Default `Date.now`. */
  readonly now?: () => number;
  /** Stored in each row (`writtenBy`), for diagnosis. Default: random. */
  readonly instanceId?: string;
  /** Where misses caused by failures go (never a value). Default: nowhere. */
  readonly log?: (line: string) => void;
  /** Default {@link DEFAULT_FILL_LEASE_MS}. */
  readonly fillLeaseMs?: number;
  /** Default {@link DEFAULT_FILL_POLL_MS}. */
  readonly fillPollMs?: number;
  /** Default {@link DEFAULT_STORAGE_TIMEOUT_MS}. */
  readonly storageTimeoutMs?: number;
  /** A number in [0, 1), for the waiters' jitter. Default `Math.random`. */
  readonly random?: () => number;
}

/**
 * The shared cache over Azure Table storage, table {@link SHARED_CACHE_TABLE}.
 *
 * One row per vault alias (PartitionKey), name and slot (RowKey `<lower-case name>@<version or
 * latest>`), with columns `vault`, `name`, `version` (the version the value is), `expiresAt`
 * (ISO 8601), `iv`, `ciphertext`, `tag` (binary) and `writtenBy`. The sealed plaintext is the
 * secret's value with its properties (content type, dates, enabled); the AAD binds vault, name,
 * slot, version and `expiresAt`, so a row moved or with its expiry extended does not decrypt.
 *
 * A fill lease is a row `<row key>:lease` in the same partition (`leaseUntil`, `writtenBy`),
 * created by the instance that reads the vault for the others. Its holder stores the secret and
 * releases the lease in one entity group transaction that requires the lease unchanged (ETag):
 * when {@link SharedSecretCache.delete} removed the lease meanwhile, the old value is not stored.
 */
export function createTableSharedSecretCache(storage: StorageSettings | string, options: TableSharedSecretCacheOptions): SharedSecretCache {
  return new TableSharedSecretCache(storage, options);
}

/** A type, not an interface: transactions take entities as records. */
type RowColumns = {
  vault?: string;
  name?: string;
  version?: string;
  expiresAt?: string;
  iv?: Uint8Array;
  ciphertext?: Uint8Array;
  tag?: Uint8Array;
  writtenBy?: string;
};

type LeaseColumns = {
  leaseUntil?: string;
  writtenBy?: string;
};

/** Where one secret lives in the table. */
interface Slot {
  readonly vault: string;
  readonly name: string;
  /** `latest` or the lower-cased pinned version. */
  readonly slot: string;
  readonly rowKey: string;
  readonly leaseKey: string;
  /** `vault/name@slot`, for log lines. */
  readonly label: string;
}

/** The sealed plaintext: the secret without its vault (the row's partition says that). */
type SealedSecret = Omit<VaultSecret, 'vault'>;

class TableSharedSecretCache implements SharedSecretCache {
  private client: TableClient | undefined;
  private readonly now: () => number;
  private readonly instanceId: string;
  private readonly log: (line: string) => void;
  private readonly ttlMs: number;
  private readonly fillLeaseMs: number;
  private readonly fillPollMs: number;
  private readonly storageTimeoutMs: number;

  constructor(
    private readonly storage: StorageSettings | string,
    private readonly options: TableSharedSecretCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.instanceId = options.instanceId ?? randomBytes(6).toString('hex');
    this.log = options.log ?? ((): void => undefined);
    this.ttlMs = options.ttlMs;
    this.fillLeaseMs = options.fillLeaseMs ?? DEFAULT_FILL_LEASE_MS;
    this.fillPollMs = options.fillPollMs ?? DEFAULT_FILL_POLL_MS;
    this.storageTimeoutMs = options.storageTimeoutMs ?? DEFAULT_STORAGE_TIMEOUT_MS;
  }

  async get(vault: string, name: string, version: string | undefined): Promise<VaultSecret | undefined> {
    const slot = this.slotOf(vault, name, version);
    if (!slot || !this.enabled) return undefined;
    try {
      const client = await this.table();
      return await this.read(client, slot);
    } catch (err: unknown) {
      this.log(`Shared cache: reading ${slot.label} failed; treated as a miss: ${describe(err)}`);
      return undefined;
    }
  }

  async put(vault: string, name: string, version: string | undefined, secret: VaultSecret): Promise<boolean> {
    const slot = this.slotOf(vault, name, version);
    if (!slot || !this.enabled) return false;
    try {
      const row = await this.rowOf(slot, secret);
      if (!row) return false;
      await (await this.table()).upsertEntity(row, 'Replace', { abortSignal: this.signal() });
      return true;
    } catch (err: unknown) {
      this.log(`Shared cache: storing ${slot.label} failed: ${describe(err)}`);
      return false;
    }
  }

  async delete(vault: string, name: string): Promise<void> {
    const slot = this.slotOf(vault, name, undefined);
    if (!slot) return;
    const client = await this.table();
    await Promise.all(
      [slot.rowKey, slot.leaseKey].map(async (rowKey) => {
        try {
          await client.deleteEntity(slot.vault, rowKey, { abortSignal: this.signal() });
        } catch (err: unknown) {
          if (tableErrorStatus(err) !== 404) throw err;
        }
      }),
    );
  }

  async getOrFill(vault: string, name: string, version: string | undefined, load: () => Promise<VaultSecret>): Promise<SharedFill> {
    const slot = this.slotOf(vault, name, version);
    if (!slot || !this.enabled) return { secret: await load(), source: 'loaded' };

    let client: TableClient;
    let lease: string | undefined;
    try {
      client = await this.table();
      // Without the key nothing can be stored: no lease, so no other instance waits for this one.
      await this.options.dataKey();
      const stored = await this.read(client, slot);
      if (stored) return { secret: stored, source: 'hit' };
      lease = await this.takeLease(client, slot);
    } catch (err: unknown) {
      this.log(`Shared cache: ${slot.label} unavailable, reading the vault: ${describe(err)}`);
      return { secret: await load(), source: 'loaded' };
    }
    return lease === undefined ? this.waitForFill(client, slot, load) : this.fill(client, slot, lease, load);
  }

  /** The lease holder: reads the vault once for every instance and stores the copy. */
  private async fill(client: TableClient, slot: Slot, leaseEtag: string, load: () => Promise<VaultSecret>): Promise<SharedFill> {
    // Another holder may have stored it between this instance's miss and its lease.
    try {
      const stored = await this.read(client, slot);
      if (stored) {
        await this.releaseLease(client, slot, leaseEtag);
        return { secret: stored, source: 'hit' };
      }
    } catch (err: unknown) {
      this.log(`Shared cache: reading ${slot.label} failed: ${describe(err)}`);
    }

    let secret: VaultSecret;
    try {
      secret = await load();
    } catch (err: unknown) {
      await this.releaseLease(client, slot, leaseEtag);
      throw err;
    }

    let source: SharedCacheSource = 'loaded';
    try {
      const row = await this.rowOf(slot, secret);
      if (!row) {
        await this.releaseLease(client, slot, leaseEtag);
      } else {
        // One transaction: the copy is stored only while the lease is still this instance's. A
        // new-version event deletes the lease, and then this (possibly old) value must not land.
        const released = { partitionKey: slot.vault, rowKey: slot.leaseKey, leaseUntil: RELEASED, writtenBy: this.instanceId };
        const result = await client.submitTransaction(
          [
            ['upsert', row, 'Replace'],
            ['update', released, 'Replace', { etag: leaseEtag }],
          ],
          { abortSignal: this.signal() },
        );
        source = 'filled';
        const releasedEtag = result.subResponses[1]?.etag;
        if (releasedEtag) await this.releaseLease(client, slot, releasedEtag);
      }
    } catch (err: unknown) {
      // Frees the lease unless the transaction replaced it (then its ETag no longer matches).
      await this.releaseLease(client, slot, leaseEtag);
      const status = tableErrorStatus(err);
      this.log(
        status === 404 || status === 412
          ? `Shared cache: ${slot.label} changed while it was read from the vault (its fill lease was deleted); not stored`
          : `Shared cache: storing ${slot.label} failed: ${describe(err)}`,
      );
    }
    return { secret, source };
  }

  /** Another instance holds the lease: wait for its copy, or read the vault when it does not come. */
  private async waitForFill(client: TableClient, slot: Slot, load: () => Promise<VaultSecret>): Promise<SharedFill> {
    const random = this.options.random ?? Math.random;
    let reportedUndecryptable = false;
    let delay = this.fillPollMs;
    // Bounded by the time slept, not by the clock (which a simulation may hold still).
    for (let waited = 0; waited < this.fillLeaseMs;) {
      const pause = Math.max(1, Math.round(delay * (0.5 + random())));
      await sleep(pause);
      waited += pause;
      delay = Math.min(delay * 2, MAX_FILL_POLL_MS);
      let row: (RowColumns & { etag: string }) | undefined;
      let lease: LeaseColumns | undefined;
      try {
        // The copy and the lease in one query: one round trip per poll.
        const entities = client.listEntities<RowColumns & LeaseColumns>({
          queryOptions: { filter: odata`PartitionKey eq ${slot.vault} and (RowKey eq ${slot.rowKey} or RowKey eq ${slot.leaseKey})` },
          abortSignal: this.signal(),
        });
        for await (const entity of entities) {
          if (entity.rowKey === slot.rowKey) row = entity;
          else lease = entity;
        }
      } catch (err: unknown) {
        this.log(`Shared cache: ${slot.label} unavailable while waiting for another instance, reading the vault: ${describe(err)}`);
        break;
      }
      if (row) {
        try {
          const secret = await this.openRow(slot, row);
          if (secret) return { secret, source: 'waited' };
        } catch (err: unknown) {
          if (!(err instanceof SharedCacheDecryptError)) {
            this.log(`Shared cache: ${slot.label} unavailable while waiting for another instance, reading the vault: ${describe(err)}`);
            break;
          }
          if (!reportedUndecryptable) this.reportUnreadable(slot, row, err);
          reportedUndecryptable = true;
        }
      }
      // The holder finished without a usable copy (vault error, disabled secret, write failed).
      if (!lease || !this.isHeld(lease)) break;
    }
    return { secret: await load(), source: 'loaded' };
  }

  /**
   * Takes the fill lease: resolves with its ETag, or undefined when another instance holds it.
   * A lease left behind by an instance that stopped is taken over once it has run out.
   * @throws the storage error.
   */
  private async takeLease(client: TableClient, slot: Slot): Promise<string | undefined> {
    const lease = {
      partitionKey: slot.vault,
      rowKey: slot.leaseKey,
      leaseUntil: new Date(this.now() + this.fillLeaseMs).toISOString(),
      writtenBy: this.instanceId,
    };
    try {
      return (await client.createEntity<LeaseColumns>(lease, { abortSignal: this.signal() })).etag ?? '*';
    } catch (err: unknown) {
      if (tableErrorStatus(err) !== 409) throw err;
    }
    let current: LeaseColumns & { etag: string };
    try {
      current = await client.getEntity<LeaseColumns>(slot.vault, slot.leaseKey, { abortSignal: this.signal() });
    } catch (err: unknown) {
      // Released just now: its holder's copy is there or about to be.
      if (tableErrorStatus(err) === 404) return undefined;
      throw err;
    }
    if (this.isHeld(current)) return undefined;
    try {
      const updated = await client.updateEntity<LeaseColumns>(lease, 'Replace', { etag: current.etag, abortSignal: this.signal() });
      return updated.etag ?? '*';
    } catch (err: unknown) {
      // Someone else took it over first, or released and deleted it.
      const status = tableErrorStatus(err);
      if (status === 412 || status === 404) return undefined;
      throw err;
    }
  }

  /** Deletes the lease if it is still the one this instance wrote. Best effort: a left lease runs out. */
  private async releaseLease(client: TableClient, slot: Slot, etag: string): Promise<void> {
    try {
      await client.deleteEntity(slot.vault, slot.leaseKey, { etag, abortSignal: this.signal() });
    } catch (err: unknown) {
      const status = tableErrorStatus(err);
      if (status !== 404 && status !== 412) this.log(`Shared cache: releasing the fill lease of ${slot.label} failed: ${describe(err)}`);
    }
  }

  /** A TTL of 0 (`CACHE_TTL_SECONDS=0`) stores nothing and reads nothing. */
  private get enabled(): boolean {
    return this.ttlMs > 0;
  }

  private isHeld(lease: LeaseColumns): boolean {
    const until = typeof lease.leaseUntil === 'string' ? Date.parse(lease.leaseUntil) : Number.NaN;
    return until > this.now();
  }

  /**
   * The stored copy, or undefined when there is none or it expired; an undecryptable copy is
   * logged and is a miss.
   * @throws the storage error, or the data key's.
   */
  private async read(client: TableClient, slot: Slot): Promise<VaultSecret | undefined> {
    let row: RowColumns;
    try {
      row = await client.getEntity<RowColumns>(slot.vault, slot.rowKey, { abortSignal: this.signal() });
    } catch (err: unknown) {
      if (tableErrorStatus(err) === 404) return undefined;
      throw err;
    }
    try {
      return await this.openRow(slot, row);
    } catch (err: unknown) {
      if (!(err instanceof SharedCacheDecryptError)) throw err;
      this.reportUnreadable(slot, row, err);
      return undefined;
    }
  }

  /**
   * Decrypts a row: undefined when it expired.
   * @throws SharedCacheDecryptError when it does not authenticate or is not a stored secret.
   */
  private async openRow(slot: Slot, row: RowColumns): Promise<VaultSecret | undefined> {
    const expiresAt = typeof row.expiresAt === 'string' ? Date.parse(row.expiresAt) : Number.NaN;
    const now = this.now();
    // A row from an instance with a longer TTL (or a far-off clock) is not trusted past this one's.
    if (!(expiresAt > now) || expiresAt > now + this.ttlMs + CLOCK_SKEW_MS) return undefined;
    const { iv, ciphertext, tag } = row;
    if (!(iv instanceof Uint8Array) || !(ciphertext instanceof Uint8Array) || !(tag instanceof Uint8Array)) {
      throw new SharedCacheDecryptError('The row has no sealed value');
    }
    const context = sealingContext({
      vault: slot.vault,
      name: slot.name,
      slot: slot.slot,
      version: typeof row.version === 'string' ? row.version : '',
      expiresAt: String(row.expiresAt),
    });
    const sealed = parseSealed(openValue(await this.options.dataKey(), { iv, ciphertext, tag }, context));
    if (!sealed || sealed.name.toLowerCase() !== slot.name.toLowerCase() || (sealed.version ?? '') !== (row.version ?? '')) {
      throw new SharedCacheDecryptError('The sealed value is not the secret the row names');
    }
    if (slot.slot !== 'latest' && sealed.version?.toLowerCase() !== slot.slot) {
      throw new SharedCacheDecryptError('The sealed value is not the version the row names');
    }
    // Never stored, so never served: a disabled secret is refused by the vault, not by this cache.
    if (!sealed.enabled) return undefined;
    return { ...sealed, vault: slot.vault };
  }

  private reportUnreadable(slot: Slot, row: RowColumns, err: unknown): void {
    const writer = typeof row.writtenBy === 'string' ? ` written by ${row.writtenBy}` : '';
    this.log(
      `Shared cache: ${slot.label}${writer} does not decrypt under this instance's data key (CACHE_SHARED_KEY_SECRET differs, or the row was altered); treated as a miss: ${describe(err)}`,
    );
  }

  /**
   * The row for a secret, or undefined when it must not be stored: disabled, another version than
   * the pinned one asked for, too large, or the cache is off.
   * @throws the data key's error.
   */
  private async rowOf(slot: Slot, secret: VaultSecret): Promise<({ partitionKey: string; rowKey: string } & RowColumns) | undefined> {
    if (secret.enabled === false) return undefined;
    if (slot.slot !== 'latest' && secret.version?.toLowerCase() !== slot.slot) return undefined;
    if (secret.name.toLowerCase() !== slot.name.toLowerCase()) return undefined;
    const version = secret.version ?? '';
    const expiresAt = new Date(this.now() + this.ttlMs).toISOString();
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
    const context = sealingContext({ vault: slot.vault, name: slot.name, slot: slot.slot, version, expiresAt });
    const sealed = sealValue(await this.options.dataKey(), JSON.stringify(plaintext), context);
    if (sealed.ciphertext.length > MAX_BINARY_BYTES) {
      this.log(`Shared cache: ${slot.label} is too large to store (${sealed.ciphertext.length} bytes sealed); not stored`);
      return undefined;
    }
    return {
      partitionKey: slot.vault,
      rowKey: slot.rowKey,
      vault: slot.vault,
      name: secret.name,
      version,
      expiresAt,
      iv: sealed.iv,
      ciphertext: sealed.ciphertext,
      tag: sealed.tag,
      writtenBy: this.instanceId,
    };
  }

  /** Where a secret lives, or undefined (a miss, a pass-through) when a key would not be safe to build. */
  private slotOf(vault: string, name: string, version: string | undefined): Slot | undefined {
    if (!VAULT_ALIAS.test(vault) || !SECRET_NAME.test(name) || (version !== undefined && !SECRET_VERSION.test(version))) return undefined;
    const slot = version?.toLowerCase() ?? 'latest';
    const rowKey = `${name.toLowerCase()}@${slot}`;
    return { vault, name, slot, rowKey, leaseKey: `${rowKey}:lease`, label: `${vault}/${name}@${slot}` };
  }

  private async table(): Promise<TableClient> {
    this.client ??= createTableClient(this.storage, SHARED_CACHE_TABLE, this.options.credential);
    await withTimeout(ensureTable(this.client), this.storageTimeoutMs, `creating table ${SHARED_CACHE_TABLE}`);
    return this.client;
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.storageTimeoutMs);
  }
}

/** The sealed plaintext, when it has the shape {@link TableSharedSecretCache} writes. */
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

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** `promise`, or a rejection after `ms` (the promise itself runs on; a later call may reuse it). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms ${what}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * One line about a failure: for a storage answer its status and error code (never its body), else
 * the first line of the message.
 */
