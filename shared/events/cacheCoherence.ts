import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { odata } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createTableClient, describeStorageError as describe, ensureTable, tableErrorStatus } from '../storage/tableStorage';

/** Table of published invalidations. */
export const INVALIDATIONS_TABLE = 'brokerinvalidations';
/** Every row lives in this one partition, so a poll is a single-partition range query. */
const PARTITION = 'invalidations';
/** How often an instance looks for invalidations; the contract allows 30 s. */
export const DEFAULT_POLL_INTERVAL_MS = 5_000;
/**
 * Each poll re-reads rows this far behind its own last successful poll: enough for clocks of
 * different instances to disagree and for a row stamped before a slow insert landed. Rows seen
 * already are skipped by their key.
 */
export const POLL_OVERLAP_MS = 30_000;
/** Rows older than this are deleted, best effort. */
export const RETENTION_MS = 24 * 60 * 60 * 1000;
/** How often an instance looks for rows to delete (and once, on its first poll). */
const CLEANUP_INTERVAL_MS = 60 * 60 * 1000;

/** Applies one invalidation: `version` is the secret's new version, when the publisher knew it. */
export type InvalidationHandler = (vault: string, secret: string, version: string | undefined) => void;

/**
 * Tells every instance of the function app that a secret changed, so each drops its cached copy.
 *
 * Why polling: a Functions instance has no inbound channel another instance could call, and the
 * Event Grid event reaches only one of them. Each instance therefore reads one storage partition
 * every few seconds. At the default 5 s an invalidation is applied everywhere well within the
 * contract's 30 s, and a secret request never waits on a storage round trip.
 */
export interface CacheCoherence {
  /** Records that `vault`/`secret` changed (to `version`, when known), for every instance to see. */
  publish(vault: string, secret: string, version: string | null, at?: Date): Promise<void>;
  /**
   * Polls now and then every `pollIntervalMs`, calling `onInvalidate` once per invalidation seen
   * that another instance published (this instance applied its own when it published them).
   * Timers are unref'd (they never keep the process alive); failures are logged and the next tick
   * tries again. Never throws. A second call while running only replaces the callback.
   */
  start(onInvalidate: InvalidationHandler): void;
  /**
   * One poll now (after any poll already running); resolves with how many invalidations it
   * applied, to `onInvalidate` or else to the callback given to `start` (with neither, rows are
   * only counted, and count as seen). This instance's own rows are skipped and not counted.
   * @throws the storage error when the query fails.
   */
  pollOnce(onInvalidate?: InvalidationHandler): Promise<number>;
  /** Stops polling; a poll already running finishes. */
  stop(): void;
}

/** Options of {@link createTableCacheCoherence}. */
export interface CacheCoherenceOptions {
  /** Default {@link DEFAULT_POLL_INTERVAL_MS}. */
  pollIntervalMs?: number;
  /** Where failures of background polls go. Default: nowhere. */
  log?: (line: string) => void;
  /** Stored with each published row; rows with this instance's id are not applied again. Default: random. */
  instanceId?: string;
  now?: () => Date;
  /** Serves identity-based storage. Default `DefaultAzureCredential`. */
  credential?: TokenCredential;
}

/**
 * Cache coherence over Azure Table storage (`AzureWebJobsStorage`), table
 * {@link INVALIDATIONS_TABLE}.
 *
 * Rows live in one partition with RowKey `<ISO time>_<random>`, so a poll is one query
 * `PartitionKey eq 'invalidations' and RowKey gt '<last successful poll − overlap>'` that returns
 * only recent rows. An instance starts from its creation time minus the overlap (its cache starts
 * empty, so nothing older matters) and never reads a row older than that again. Its own
 * invalidations come back to it too and are skipped (`publishedBy`). About once an hour an
 * instance deletes rows older than {@link RETENTION_MS}.
 */
export function createTableCacheCoherence(storage: StorageSettings | string, opts: CacheCoherenceOptions = {}): CacheCoherence {
  const pollIntervalMs = opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const log = opts.log ?? ((): void => undefined);
  const instanceId = opts.instanceId ?? randomBytes(6).toString('hex');
  const now = opts.now ?? ((): Date => new Date());

  let client: TableClient | undefined;
  /** Start of the last poll that succeeded; the next reads from here minus the overlap. */
  let lastPollAt = now().getTime();
  /** RowKeys already applied that are still inside the overlap window. */
  const seen = new Set<string>();
  let lastCleanupAt = Number.NEGATIVE_INFINITY;
  let handler: InvalidationHandler | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  /** Bumped by every start and stop, so a poll finishing late never revives an old timer chain. */
  let generation = 0;
  /** Polls run one after another, so two never apply the same row. */
  let queue: Promise<unknown> = Promise.resolve();

  async function table(): Promise<TableClient> {
    client ??= createTableClient(storage, INVALIDATIONS_TABLE, opts.credential);
    await ensureTable(client);
    return client;
  }

  async function poll(apply: InvalidationHandler | undefined): Promise<number> {
    const startedAt = now().getTime();
    const from = new Date(lastPollAt - POLL_OVERLAP_MS).toISOString();
    const rows = (await table()).listEntities<InvalidationColumns>({
      queryOptions: {
        filter: odata`PartitionKey eq ${PARTITION} and RowKey gt ${from}`,
        select: ['RowKey', 'vault', 'secret', 'version', 'publishedBy'],
      },
    });
    let applied = 0;
    for await (const row of rows) {
      const key = row.rowKey;
      if (key === undefined || seen.has(key)) continue;
      // Seen at once: if a later page fails, the retry reads from the same place and skips it.
      seen.add(key);
      if (typeof row.vault !== 'string' || typeof row.secret !== 'string') continue;
      if (row.publishedBy === instanceId) continue;
      applied++;
      try {
        apply?.(row.vault, row.secret, typeof row.version === 'string' && row.version !== '' ? row.version : undefined);
      } catch (err: unknown) {
        log(`Cache invalidation of ${row.vault}/${row.secret} failed: ${describe(err)}`);
      }
    }
    // Only a poll that read everything moves the window.
    lastPollAt = startedAt;
    const floor = new Date(lastPollAt - POLL_OVERLAP_MS).toISOString();
    for (const key of seen) if (key <= floor) seen.delete(key);
    if (startedAt - lastCleanupAt >= CLEANUP_INTERVAL_MS) {
      lastCleanupAt = startedAt;
      await cleanup(startedAt);
    }
    return applied;
  }

  /** Deletes rows past retention. Best effort: other instances may be deleting the same rows. */
  async function cleanup(at: number): Promise<void> {
    try {
      const client = await table();
      const before = new Date(at - RETENTION_MS).toISOString();
      const old = client.listEntities({
        queryOptions: { filter: odata`PartitionKey eq ${PARTITION} and RowKey lt ${before}`, select: ['RowKey'] },
      });
      for await (const { rowKey } of old) {
        if (rowKey === undefined) continue;
        try {
          await client.deleteEntity(PARTITION, rowKey);
        } catch (err: unknown) {
          if (tableErrorStatus(err) !== 404) throw err;
        }
      }
    } catch (err: unknown) {
      log(`Cache coherence: deleting old invalidations failed: ${describe(err)}`);
    }
  }

  function pollOnce(apply?: InvalidationHandler): Promise<number> {
    const result = queue.then(() => poll(apply ?? handler));
    queue = result.catch(() => undefined);
    return result;
  }

  function schedule(delayMs: number, chain: number): void {
    timer = setTimeout(() => {
      timer = undefined;
      void pollOnce()
        .then(
          () => undefined,
          (err: unknown) => log(`Cache coherence poll failed, retrying in ${pollIntervalMs} ms: ${describe(err)}`),
        )
        .finally(() => {
          if (running && chain === generation) schedule(pollIntervalMs, chain);
        });
    }, delayMs);
    timer.unref();
  }

  return {
    async publish(vault, secret, version, at = now()) {
      await (
        await table()
      ).createEntity<InvalidationColumns>({
        partitionKey: PARTITION,
        rowKey: `${at.toISOString()}_${randomBytes(8).toString('hex')}`,
        vault,
        secret,
        // Table storage has no nulls: an unknown version is an empty string.
        version: version ?? '',
        publishedBy: instanceId,
      });
    },
    start(onInvalidate) {
      handler = onInvalidate;
      if (running) return;
      running = true;
      schedule(0, ++generation);
    },
    pollOnce,
    stop() {
      running = false;
      generation++;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}

interface InvalidationColumns {
  vault?: string;
  secret?: string;
  version?: string;
  publishedBy?: string;
}
