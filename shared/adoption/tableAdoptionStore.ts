import type { TableClient, TransactionAction } from '@azure/data-tables';
import { odata } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createTableClient, describeStorageError, ensureTable } from '../storage/tableStorage';
import { adoptionPartition, adoptionRowKey, mergeAdoption } from './adoptionRules';
import type { AdoptionStore } from './adoptionTracker';
import type { AdoptionRow } from './adoptionTypes';

/** Table of version adoption in `AzureWebJobsStorage`: one partition per secret, one row per caller. */
export const ADOPTION_TABLE = 'brokeradoption';

/** A Table transaction holds at most 100 operations, all in one partition. */
const MAX_TRANSACTION = 100;

interface AdoptionColumns {
  vault: string;
  secret: string;
  caller: string;
  version: string;
  since: string;
  lastRead: string;
}

/**
 * The adoption store in Table storage, table {@link ADOPTION_TABLE} (created on first use).
 * A write reads each touched partition once, merges (adoptionRules.ts `mergeAdoption`), and writes
 * what changed in one transaction per partition, each row conditional on the ETag it was read with:
 * two instances flushing the same caller at once lose nothing, the loser writes again next interval.
 * Errors carry the Table service's status and code, never a response body.
 */
export function createTableAdoptionStore(storage: StorageSettings | string, credential?: TokenCredential): AdoptionStore {
  const client = createTableClient(storage, ADOPTION_TABLE, credential);
  return new TableAdoptionStore(client);
}

class TableAdoptionStore implements AdoptionStore {
  constructor(private readonly client: TableClient) {}

  async write(rows: readonly AdoptionRow[]): Promise<void> {
    if (rows.length === 0) return;
    const byPartition = new Map<string, AdoptionRow[]>();
    for (const row of rows) {
      const partition = adoptionPartition(row.vault, row.secret);
      const group = byPartition.get(partition);
      if (group) group.push(row);
      else byPartition.set(partition, [row]);
    }
    await this.guard(async () => {
      await ensureTable(this.client);
      // Partitions one after another: a flush is background work, bounded by the secrets read in 30 s.
      for (const [partition, group] of byPartition) await this.writePartition(partition, group);
    });
  }

  read(vault: string, secret: string): Promise<AdoptionRow[]> {
    return this.guard(async () => {
      const stored = await this.list(odata`PartitionKey eq ${adoptionPartition(vault, secret)}`);
      return stored.map((s) => s.row);
    });
  }

  readAll(): Promise<AdoptionRow[]> {
    return this.guard(async () => (await this.list(undefined)).map((s) => s.row));
  }

  private async writePartition(partition: string, rows: readonly AdoptionRow[]): Promise<void> {
    const stored = new Map((await this.listPartition(partition)).map((s) => [s.rowKey, s]));
    const actions: TransactionAction[] = [];
    for (const row of rows) {
      const rowKey = adoptionRowKey(row.caller);
      const current = stored.get(rowKey);
      const merged = mergeAdoption(current?.row, row);
      if (!merged) continue;
      const entity = { partitionKey: partition, rowKey, ...columnsOf(merged) };
      actions.push(current ? ['update', entity, 'Replace', { etag: current.etag }] : ['create', entity]);
    }
    for (let i = 0; i < actions.length; i += MAX_TRANSACTION) {
      await this.client.submitTransaction(actions.slice(i, i + MAX_TRANSACTION));
    }
  }

  private listPartition(partition: string): Promise<{ rowKey: string; etag: string; row: AdoptionRow }[]> {
    return this.list(odata`PartitionKey eq ${partition}`);
  }

  private async list(filter: string | undefined): Promise<{ rowKey: string; etag: string; row: AdoptionRow }[]> {
    const found: { rowKey: string; etag: string; row: AdoptionRow }[] = [];
    try {
      for await (const e of this.client.listEntities<AdoptionColumns>(filter ? { queryOptions: { filter } } : {})) {
        const row = rowOf(e);
        if (row) found.push({ rowKey: e.rowKey ?? '', etag: e.etag, row });
      }
    } catch (err: unknown) {
      // The table is created on the first write: before it, nothing was recorded.
      if ((err as { statusCode?: unknown }).statusCode === 404) return [];
      throw err;
    }
    return found;
  }

  /** Storage errors as a short phrase (status and code): the SDK's message may carry the response body. */
  private async guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err: unknown) {
      throw new Error(`table ${ADOPTION_TABLE}: ${describeStorageError(err)}`);
    }
  }
}

function columnsOf(row: AdoptionRow): AdoptionColumns {
  return { vault: row.vault, secret: row.secret, caller: row.caller, version: row.version, since: row.since, lastRead: row.lastRead };
}

/** A stored row, or undefined when a column is missing (a row this code did not write). */
function rowOf(e: Partial<AdoptionColumns>): AdoptionRow | undefined {
  const { vault, secret, caller, version, since, lastRead } = e;
  if (
    typeof vault !== 'string' ||
    typeof secret !== 'string' ||
    typeof caller !== 'string' ||
    typeof version !== 'string' ||
    typeof since !== 'string' ||
    typeof lastRead !== 'string'
  )
    return undefined;
  return { vault, secret, caller, version, since, lastRead };
}
