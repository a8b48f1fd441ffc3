import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createTableClient, describeStorageError as describe, ensureTable, tableErrorStatus } from '../storage/tableStorage';
import { SharedCacheDecryptError } from './sealedValue';
import { isHeld, isStorable, MAX_BINARY_BYTES, openRow, rowStanding, sealRow, slotOf, writerOf } from './sharedCacheRows';
import type { LeaseColumns, MarkColumns, Opened, RowColumns, RowEntity, Slot } from './sharedCacheRows';
import type { SharedCacheSource, SharedFill, SharedSecretCache } from './sharedSecretCache';
import { releasedLease, releaseLease, takeLease } from './tableFillLease';
import type { LeaseContext } from './tableFillLease';
import type { VaultSecret } from './vaultGateway';
import { vaultIdentity } from '../config';

/** The rows' keys, shape and accept rule live in sharedCacheRows.ts; the PartitionKey is part of this module's API. */
export { sharedCachePartition } from './sharedCacheRows';

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
 * The rows (keys, columns, sealing) and the rule that says which may be served (expiry, rotation
 * mark, authenticity) are described and implemented in sharedCacheRows.ts; this adapter reads and
 * writes them with point reads and writes, and coordinates fills.
 *
 * The fill lease that lets one instance read the vault for the fleet: tableFillLease.ts.
 */
export function createTableSharedSecretCache(storage: StorageSettings | string, options: TableSharedSecretCacheOptions): SharedSecretCache {
  return new TableSharedSecretCache(storage, options);
}

/** What one look at a slot found. */
interface Look {
  readonly row?: RowColumns | undefined;
  readonly lease?: LeaseColumns | undefined;
  /** The name's rotation mark now: '' when there is none, and always for a pinned version. */
  readonly generation: string;
}

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
  private readonly leaseContext: LeaseContext;

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
    this.leaseContext = {
      now: this.now,
      leaseMs: this.fillLeaseMs,
      instanceId: this.instanceId,
      log: this.log,
      signal: () => this.signal(),
    };
  }

  async get(vault: string, name: string, version: string | undefined): Promise<VaultSecret | undefined> {
    const slot = slotOf(this.broker, this.vaultUris, vault, name, version);
    if (!slot || !this.enabled) return undefined;
    try {
      const client = await this.table();
      return (await this.read(client, slot)).opened?.secret;
    } catch (err: unknown) {
      this.log(`Shared cache: reading ${slot.label} failed; treated as a miss: ${describe(err)}`);
      return undefined;
    }
  }

  async delete(vault: string, name: string): Promise<void> {
    const slot = slotOf(this.broker, this.vaultUris, vault, name, undefined);
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
    const slot = slotOf(this.broker, this.vaultUris, vault, name, version);
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
      lease = await takeLease(client, slot, this.leaseContext);
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
        await releaseLease(client, slot, this.leaseContext, leaseEtag);
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
      await releaseLease(client, slot, this.leaseContext, leaseEtag);
      throw err;
    }

    let source: SharedCacheSource = 'loaded';
    try {
      const row = await this.rowOf(slot, secret, generation);
      if (!row) {
        await releaseLease(client, slot, this.leaseContext, leaseEtag);
      } else {
        // One transaction: the copy is stored only while the lease is still this instance's. A
        // new-version event deletes the lease, and then this (possibly old) value must not land.
        const released = releasedLease(slot, this.instanceId);
        const result = await client.submitTransaction(
          [
            ['upsert', row, 'Replace'],
            ['update', released, 'Replace', { etag: leaseEtag }],
          ],
          { abortSignal: this.signal() },
        );
        source = 'filled';
        const releasedEtag = result.subResponses[1]?.etag;
        if (releasedEtag) await releaseLease(client, slot, this.leaseContext, releasedEtag);
      }
    } catch (err: unknown) {
      // Frees the lease unless the transaction replaced it (then its ETag no longer matches).
      await releaseLease(client, slot, this.leaseContext, leaseEtag);
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
        // The copy, the lease and the mark: three point reads in parallel per poll.
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
      if (!found.lease || !isHeld(found.lease, this.now())) break;
    }
    return { secret: await load(), source: 'loaded' };
  }

  /** A TTL of 0 (`CACHE_TTL_SECONDS=0`) stores nothing and reads nothing. */
  private get enabled(): boolean {
    return this.ttlMs > 0;
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
   * point reads (PartitionKey and RowKey), all in parallel, so one round trip of latency. Never a
   * query: Table storage serves an `or` of RowKeys as a scan of the partition.
   * @throws the storage error (other than 404, which is "absent").
   */
  private async look(client: TableClient, slot: Slot, withLease: boolean): Promise<Look> {
    const [row, lease, mark] = await Promise.all([
      this.pointRead<RowColumns>(client, slot, slot.rowKey),
      withLease ? this.pointRead<LeaseColumns>(client, slot, slot.leaseKey) : undefined,
      slot.slot === 'latest' ? this.pointRead<MarkColumns>(client, slot, slot.markKey) : undefined,
    ]);
    return { row, lease, generation: typeof mark?.generation === 'string' ? mark.generation : '' };
  }

  /** One entity of the slot's partition, or undefined when there is none (404). */
  private async pointRead<T extends object>(client: TableClient, slot: Slot, rowKey: string): Promise<T | undefined> {
    try {
      return await client.getEntity<T>(slot.partition, rowKey, { abortSignal: this.signal() });
    } catch (err: unknown) {
      if (tableErrorStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /**
   * The copy in `row` when it may be served: not expired, stored under the name's current
   * rotation mark `generation`, and authentic. Anything else is a miss; a refused row is logged
   * (never a value) unless `quiet`.
   * @throws the data key's error.
   */
  private async accept(slot: Slot, row: RowColumns, generation: string, quiet: boolean): Promise<Opened | undefined> {
    const standing = rowStanding(row, generation, this.now(), this.ttlMs);
    if (standing.kind === 'expired') return undefined;
    if (standing.kind === 'olderMark') {
      if (!quiet) {
        this.log(
          `Shared cache: ${slot.label}${writerOf(row)} was stored before the secret's latest new version (its rotation mark differs); treated as a miss`,
        );
      }
      return undefined;
    }
    const key = await this.options.dataKey();
    try {
      const secret = openRow(key, this.broker, slot, row);
      return secret ? { secret, expiresAt: standing.expiresAt } : undefined;
    } catch (err: unknown) {
      if (!(err instanceof SharedCacheDecryptError)) throw err;
      if (!quiet) this.reportUnreadable(slot, row, err);
      return undefined;
    }
  }

  private reportUnreadable(slot: Slot, row: RowColumns, err: unknown): void {
    this.log(
      `Shared cache: ${slot.label}${writerOf(row)} does not decrypt under this instance's data key (CACHE_SHARED_KEY_SECRET differs, or the row was altered); treated as a miss: ${describe(err)}`,
    );
  }

  /**
   * The row for a secret, sealed under the rotation mark `generation` seen before the vault was
   * read, or undefined when it must not be stored: disabled, another name or version than the one
   * asked for, or too large.
   * @throws the data key's error.
   */
  private async rowOf(slot: Slot, secret: VaultSecret, generation: string): Promise<RowEntity | undefined> {
    if (!isStorable(slot, secret)) return undefined;
    const row = sealRow(await this.options.dataKey(), slot, secret, {
      broker: this.broker,
      generation,
      expiresAt: new Date(this.now() + this.ttlMs).toISOString(),
      writtenBy: this.instanceId,
    });
    if (row.ciphertext.length > MAX_BINARY_BYTES) {
      this.log(`Shared cache: ${slot.label} is too large to store (${row.ciphertext.length} bytes sealed); not stored`);
      return undefined;
    }
    return row;
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
