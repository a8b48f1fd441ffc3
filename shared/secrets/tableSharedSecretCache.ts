import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { odata } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createTableClient, describeStorageError as describe, ensureTable, tableErrorStatus } from '../storage/tableStorage';
import { openValue, sealingContext, sealValue, SharedCacheDecryptError } from './sealedValue';
import type { SharedCacheSource, SharedFill, SharedSecretCache } from './sharedSecretCache';
import type { VaultSecret } from './vaultGateway';
import { vaultIdentity } from '../config';

/** Table of the shared cache in `AzureWebJobsStorage`. */
export const SHARED_CACHE_TABLE = 'brokersharedcache';
/** The broker's name where `WEBSITE_SITE_NAME` is not set (local development, tests). */
export const LOCAL_BROKER = 'local';
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
   * This broker's vaults: alias → vault URI, as configured (`KEY_VAULT_URI`, `KEY_VAULT_ALIASES`).
   * Rows are keyed and sealed by the URI, never by the alias; an alias not here passes through.
   */
  readonly vaults: ReadonlyMap<string, string>;
  /**
   * Which broker this is: the app's name (`WEBSITE_SITE_NAME`). Brokers that share storage and
   * data key never read each other's rows. Default {@link LOCAL_BROKER}.
   */
  readonly broker?: string;
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
 * **Keys.** One partition per broker and vault: PartitionKey {@link sharedCachePartition} (the
 * broker's name and the vault as `vaultIdentity` (config.ts) names it: lower-case scheme and host, no default port), so
 * neither an alias that names another vault on another broker, nor another broker on the same
 * storage and data key, ever finds a row of this one. In it one row per name and slot (RowKey
 * `<lower-case name>@<version or latest>`), with columns `broker`, `vault` (the URI), `name`,
 * `version` (the version the value is), `expiresAt` (ISO 8601), `generation`, `iv`, `ciphertext`,
 * `tag` (binary) and `writtenBy`. The sealed plaintext is the secret's value with its properties
 * (content type, dates, enabled); the AAD binds broker, vault URI, name, slot, version, `expiresAt`
 * and `generation`, so a row moved, relabelled or with its expiry extended does not decrypt.
 *
 * **The rotation mark.** A row `<lower-case name>:rotation` (column `generation`, 128 random bits)
 * outlives the rows it condemns. {@link SharedSecretCache.delete} (a `SecretNewVersionCreated`
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
 * with it ({@link SharedFill.expiresAt}), so an instance that takes it keeps it no longer.
 *
 * A fill lease is a row `<row key>:lease` in the same partition (`leaseUntil`, `writtenBy`),
 * created by the instance that reads the vault for the others. Its holder stores the secret and
 * releases the lease in one entity group transaction that requires the lease unchanged (ETag):
 * when {@link SharedSecretCache.delete} removed the lease meanwhile, the old value is not stored.
 */
export function createTableSharedSecretCache(storage: StorageSettings | string, options: TableSharedSecretCacheOptions): SharedSecretCache {
  return new TableSharedSecretCache(storage, options);
}

/**
 * The PartitionKey of a broker's rows of one vault: `[broker, normalised vault URI]` as JSON,
 * base64url encoded (Table keys may not hold `/`, and JSON keeps any two pairs apart).
 */
export function sharedCachePartition(broker: string, vaultUri: string): string {
  return Buffer.from(JSON.stringify([broker, vaultIdentity(vaultUri)]), 'utf8').toString('base64url');
}

/** A type, not an interface: transactions take entities as records. */
type RowColumns = {
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

type LeaseColumns = {
  leaseUntil?: string;
  writtenBy?: string;
};

type MarkColumns = {
  generation?: string;
  rotatedAt?: string;
  writtenBy?: string;
};

/** Where one secret lives in the table. */
interface Slot {
  /** The alias asked with: the served secret's `vault`, and log lines. */
  readonly alias: string;
  /** The vault's normalised URI. */
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

/** What one look at a slot found. */
interface Look {
  readonly row?: RowColumns | undefined;
  readonly lease?: LeaseColumns | undefined;
  /** The name's rotation mark now: '' when there is none, and always for a pinned version. */
  readonly generation: string;
}

/** A stored copy that may be served, and until when. */
interface Opened {
  readonly secret: VaultSecret;
  /** The row's `expiresAt`, ms since the epoch. */
  readonly expiresAt: number;
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
  private readonly broker: string;
  /** Alias → normalised vault URI. */
  private readonly vaultUris: ReadonlyMap<string, string>;

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
    this.broker = options.broker ?? LOCAL_BROKER;
    const uris = new Map<string, string>();
    for (const [alias, uri] of options.vaults) {
      uris.set(alias, vaultIdentity(uri));
    }
    this.vaultUris = uris;
  }

  async get(vault: string, name: string, version: string | undefined): Promise<VaultSecret | undefined> {
    const slot = this.slotOf(vault, name, version);
    if (!slot || !this.enabled) return undefined;
    try {
      const client = await this.table();
      return (await this.read(client, slot)).opened?.secret;
    } catch (err: unknown) {
      this.log(`Shared cache: reading ${slot.label} failed; treated as a miss: ${describe(err)}`);
      return undefined;
    }
  }

  async put(vault: string, name: string, version: string | undefined, secret: VaultSecret): Promise<boolean> {
    const slot = this.slotOf(vault, name, version);
    if (!slot || !this.enabled) return false;
    try {
      const client = await this.table();
      const row = await this.rowOf(slot, secret, (await this.look(client, slot, false)).generation);
      if (!row) return false;
      await client.upsertEntity(row, 'Replace', { abortSignal: this.signal() });
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
    // The mark first: once it has moved, no copy stored before is served, wherever it comes from.
    const mark = {
      partitionKey: slot.partition,
      rowKey: slot.markKey,
      generation: randomBytes(16).toString('hex'),
      rotatedAt: new Date(this.now()).toISOString(),
      writtenBy: this.instanceId,
    };
    await client.upsertEntity<MarkColumns>(mark, 'Replace', { abortSignal: this.signal() });
    await Promise.all(
      [slot.rowKey, slot.leaseKey].map(async (rowKey) => {
        try {
          await client.deleteEntity(slot.partition, rowKey, { abortSignal: this.signal() });
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
    let generation: string;
    try {
      client = await this.table();
      // Without the key nothing can be stored: no lease, so no other instance waits for this one.
      await this.options.dataKey();
      const found = await this.read(client, slot);
      if (found.opened) return { secret: found.opened.secret, source: 'hit', expiresAt: found.opened.expiresAt };
      generation = found.generation;
      lease = await this.takeLease(client, slot);
    } catch (err: unknown) {
      this.log(`Shared cache: ${slot.label} unavailable, reading the vault: ${describe(err)}`);
      return { secret: await load(), source: 'loaded' };
    }
    return lease === undefined ? this.waitForFill(client, slot, load) : this.fill(client, slot, lease, generation, load);
  }

  /**
   * The lease holder: reads the vault once for every instance and stores the copy, under the
   * rotation mark it saw before that read.
   */
  private async fill(
    client: TableClient,
    slot: Slot,
    leaseEtag: string,
    seenGeneration: string,
    load: () => Promise<VaultSecret>,
  ): Promise<SharedFill> {
    let generation = seenGeneration;
    // Another holder may have stored it between this instance's miss and its lease (a refused row was reported then).
    try {
      const found = await this.read(client, slot, true);
      if (found.opened) {
        await this.releaseLease(client, slot, leaseEtag);
        return { secret: found.opened.secret, source: 'hit', expiresAt: found.opened.expiresAt };
      }
      generation = found.generation;
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
      const row = await this.rowOf(slot, secret, generation);
      if (!row) {
        await this.releaseLease(client, slot, leaseEtag);
      } else {
        // One transaction: the copy is stored only while the lease is still this instance's. A
        // new-version event deletes the lease, and then this (possibly old) value must not land.
        const released = { partitionKey: slot.partition, rowKey: slot.leaseKey, leaseUntil: RELEASED, writtenBy: this.instanceId };
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
    let reported = false;
    let delay = this.fillPollMs;
    // Bounded by the time slept, not by the clock (which a simulation may hold still).
    for (let waited = 0; waited < this.fillLeaseMs;) {
      const pause = Math.max(1, Math.round(delay * (0.5 + random())));
      await sleep(pause);
      waited += pause;
      delay = Math.min(delay * 2, MAX_FILL_POLL_MS);
      let found: Look;
      try {
        // The copy, the lease and the mark in one query: one round trip per poll.
        found = await this.look(client, slot, true);
      } catch (err: unknown) {
        this.log(`Shared cache: ${slot.label} unavailable while waiting for another instance, reading the vault: ${describe(err)}`);
        break;
      }
      if (found.row) {
        try {
          const opened = await this.accept(slot, found.row, found.generation, reported);
          if (opened) return { secret: opened.secret, source: 'waited', expiresAt: opened.expiresAt };
          reported = true;
        } catch (err: unknown) {
          this.log(`Shared cache: ${slot.label} unavailable while waiting for another instance, reading the vault: ${describe(err)}`);
          break;
        }
      }
      // The holder finished without a usable copy (vault error, disabled secret, write failed).
      if (!found.lease || !this.isHeld(found.lease)) break;
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
      partitionKey: slot.partition,
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
      current = await client.getEntity<LeaseColumns>(slot.partition, slot.leaseKey, { abortSignal: this.signal() });
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
      await client.deleteEntity(slot.partition, slot.leaseKey, { etag, abortSignal: this.signal() });
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
   * The stored copy when it may be served (see {@link accept}), and the rotation mark now; a
   * refused copy is a miss, logged unless `quiet`.
   * @throws the storage error, or the data key's.
   */
  private async read(client: TableClient, slot: Slot, quiet = false): Promise<{ opened?: Opened | undefined; generation: string }> {
    const found = await this.look(client, slot, false);
    return { opened: found.row ? await this.accept(slot, found.row, found.generation, quiet) : undefined, generation: found.generation };
  }

  /**
   * The slot's row, its lease (`withLease`) and, for the latest version, the name's rotation mark:
   * one point read, or one query of the partition.
   * @throws the storage error.
   */
  private async look(client: TableClient, slot: Slot, withLease: boolean): Promise<Look> {
    const latest = slot.slot === 'latest';
    if (!latest && !withLease) {
      try {
        return { row: await client.getEntity<RowColumns>(slot.partition, slot.rowKey, { abortSignal: this.signal() }), generation: '' };
      } catch (err: unknown) {
        if (tableErrorStatus(err) === 404) return { generation: '' };
        throw err;
      }
    }
    const keys = [slot.rowKey, ...(withLease ? [slot.leaseKey] : []), ...(latest ? [slot.markKey] : [])];
    const filter = `${odata`PartitionKey eq ${slot.partition}`} and (${keys.map((key) => odata`RowKey eq ${key}`).join(' or ')})`;
    let row: RowColumns | undefined;
    let lease: LeaseColumns | undefined;
    let generation = '';
    for await (const entity of client.listEntities<RowColumns & LeaseColumns & MarkColumns>({
      queryOptions: { filter },
      abortSignal: this.signal(),
    })) {
      if (entity.rowKey === slot.rowKey) row = entity;
      else if (entity.rowKey === slot.leaseKey) lease = entity;
      else if (entity.rowKey === slot.markKey && latest) generation = typeof entity.generation === 'string' ? entity.generation : '';
    }
    return { row, lease, generation };
  }

  /**
   * The copy in `row` when it may be served: not expired, stored under the name's current
   * rotation mark `generation`, and authentic. Anything else is a miss; a refused row is logged
   * (never a value) unless `quiet`.
   * @throws the data key's error.
   */
  private async accept(slot: Slot, row: RowColumns, generation: string, quiet: boolean): Promise<Opened | undefined> {
    const expiresAt = typeof row.expiresAt === 'string' ? Date.parse(row.expiresAt) : Number.NaN;
    const now = this.now();
    // A row from an instance with a longer TTL (or a far-off clock) is not trusted past this one's.
    if (!(expiresAt > now) || expiresAt > now + this.ttlMs + CLOCK_SKEW_MS) return undefined;
    if ((typeof row.generation === 'string' ? row.generation : '') !== generation) {
      if (!quiet) {
        this.log(
          `Shared cache: ${slot.label}${writerOf(row)} was stored before the secret's latest new version (its rotation mark differs); treated as a miss`,
        );
      }
      return undefined;
    }
    try {
      const secret = await this.openRow(slot, row);
      return secret ? { secret, expiresAt } : undefined;
    } catch (err: unknown) {
      if (!(err instanceof SharedCacheDecryptError)) throw err;
      if (!quiet) this.reportUnreadable(slot, row, err);
      return undefined;
    }
  }

  /**
   * Decrypts a row: undefined when it holds a disabled secret.
   * @throws SharedCacheDecryptError when it does not authenticate or is not a stored secret.
   */
  private async openRow(slot: Slot, row: RowColumns): Promise<VaultSecret | undefined> {
    const { iv, ciphertext, tag } = row;
    if (!(iv instanceof Uint8Array) || !(ciphertext instanceof Uint8Array) || !(tag instanceof Uint8Array)) {
      throw new SharedCacheDecryptError('The row has no sealed value');
    }
    const context = sealingContext({
      broker: this.broker,
      vault: slot.vaultUri,
      name: slot.name,
      slot: slot.slot,
      version: typeof row.version === 'string' ? row.version : '',
      expiresAt: String(row.expiresAt),
      generation: typeof row.generation === 'string' ? row.generation : '',
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
    return { ...sealed, vault: slot.alias };
  }

  private reportUnreadable(slot: Slot, row: RowColumns, err: unknown): void {
    this.log(
      `Shared cache: ${slot.label}${writerOf(row)} does not decrypt under this instance's data key (CACHE_SHARED_KEY_SECRET differs, or the row was altered); treated as a miss: ${describe(err)}`,
    );
  }

  /**
   * The row for a secret, sealed under the rotation mark `generation` seen before the vault was
   * read, or undefined when it must not be stored: disabled, another version than the pinned one
   * asked for, too large, or the cache is off.
   * @throws the data key's error.
   */
  private async rowOf(
    slot: Slot,
    secret: VaultSecret,
    generation: string,
  ): Promise<({ partitionKey: string; rowKey: string } & RowColumns) | undefined> {
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
    const context = sealingContext({
      broker: this.broker,
      vault: slot.vaultUri,
      name: slot.name,
      slot: slot.slot,
      version,
      expiresAt,
      generation,
    });
    const sealed = sealValue(await this.options.dataKey(), JSON.stringify(plaintext), context);
    if (sealed.ciphertext.length > MAX_BINARY_BYTES) {
      this.log(`Shared cache: ${slot.label} is too large to store (${sealed.ciphertext.length} bytes sealed); not stored`);
      return undefined;
    }
    return {
      partitionKey: slot.partition,
      rowKey: slot.rowKey,
      broker: this.broker,
      vault: slot.vaultUri,
      name: secret.name,
      version,
      expiresAt,
      generation,
      iv: sealed.iv,
      ciphertext: sealed.ciphertext,
      tag: sealed.tag,
      writtenBy: this.instanceId,
    };
  }

  /**
   * Where a secret lives, or undefined (a miss, a pass-through) when a key would not be safe to
   * build or this broker has no vault of that alias.
   */
  private slotOf(alias: string, name: string, version: string | undefined): Slot | undefined {
    if (!VAULT_ALIAS.test(alias) || !SECRET_NAME.test(name) || (version !== undefined && !SECRET_VERSION.test(version))) return undefined;
    const vaultUri = this.vaultUris.get(alias);
    if (!vaultUri) return undefined;
    const lower = name.toLowerCase();
    const slot = version?.toLowerCase() ?? 'latest';
    const rowKey = `${lower}@${slot}`;
    return {
      alias,
      vaultUri,
      partition: sharedCachePartition(this.broker, vaultUri),
      name,
      slot,
      rowKey,
      leaseKey: `${rowKey}:lease`,
      markKey: `${lower}:rotation`,
      label: `${alias}/${name}@${slot}`,
    };
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

/** ` written by <instance>` for log lines, when the row says. */
function writerOf(row: RowColumns): string {
  return typeof row.writtenBy === 'string' ? ` written by ${row.writtenBy}` : '';
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
