/**
 * Rows of one Azure Table with optimistic concurrency (ETags), and an in-memory twin with the same
 * semantics; the rotation store and the health report store are built on them (docs/rotation.md,
 * docs/operations.md). Writes answer the row's new ETag, or undefined (false) when they lose a race.
 */
import type { Edm, TableClient } from '@azure/data-tables';
import { odata } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createTableClient, ensureTable, tableErrorStatus } from './tableStorage';

/**
 * A column value; bytes are told apart with `typeof value === 'object'`, since `instanceof Uint8Array`
 * fails for a Buffer of another realm (Jest).
 */
export type EtagValue = string | number | Uint8Array;
export type EtagColumns = Record<string, EtagValue>;

/** A row as read: its keys, its own columns (the service's are left out) and its ETag. */
export interface EtagRow {
  partitionKey: string;
  rowKey: string;
  columns: EtagColumns;
  etag: string;
}

export interface EtagRows {
  /** The row, or undefined when it (or the table) does not exist; `select` names the columns to fetch (all by default). */
  read(partitionKey: string, rowKey: string, select?: readonly string[]): Promise<{ columns: EtagColumns; etag: string } | undefined>;
  /** Every row of a partition, or every row with a given RowKey; none when the table does not exist. */
  query(filter: { partitionKey: string } | { rowKey: string }): Promise<EtagRow[]>;
  /** Creates the row; undefined when it exists. */
  create(partitionKey: string, rowKey: string, columns: EtagColumns): Promise<string | undefined>;
  /** Replaces the row if its ETag is still `etag`; with no `etag`, writes it whatever is there. Undefined when the race is lost. */
  replace(partitionKey: string, rowKey: string, columns: EtagColumns, etag?: string): Promise<string | undefined>;
  /** Deletes the row if its ETag is still `etag`; false when it changed or is gone. */
  remove(partitionKey: string, rowKey: string, etag: string): Promise<boolean>;
}

/**
 * The rows of table `tableName` of the storage setting (or connection string). Reads do not create
 * the table: a missing table reads as empty, so a reader with only Storage Table Data Reader (the
 * deployer's smoke test, docs/deploying.md) can read. Writes create it on first use.
 */
export function createTableEtagRows(storage: StorageSettings | string, tableName: string, credential?: TokenCredential): EtagRows {
  let client: TableClient | undefined;
  const reader = (): TableClient => (client ??= createTableClient(storage, tableName, credential));
  const writer = async (): Promise<TableClient> => {
    const table = reader();
    await ensureTable(table);
    return table;
  };
  /** Answers undefined for the given statuses (the race lost, or nothing there) instead of throwing. */
  const unless = async <T, U>(statuses: readonly number[], absent: U, call: () => Promise<T>): Promise<T | U> => {
    try {
      return await call();
    } catch (err: unknown) {
      const status = tableErrorStatus(err);
      if (status !== undefined && statuses.includes(status)) return absent;
      throw err;
    }
  };

  return {
    read: (partitionKey, rowKey, select) =>
      unless([404], undefined, async () => {
        const entity = await reader().getEntity(partitionKey, rowKey, select && { queryOptions: { select: [...select] } });
        return { columns: fromEntity(entity), etag: entity.etag };
      }),

    query: (filter) =>
      unless([404], [], async () => {
        const text = 'partitionKey' in filter ? odata`PartitionKey eq ${filter.partitionKey}` : odata`RowKey eq ${filter.rowKey}`;
        const out: EtagRow[] = [];
        for await (const entity of reader().listEntities({ queryOptions: { filter: text } })) {
          out.push({
            partitionKey: entity.partitionKey ?? '',
            rowKey: entity.rowKey ?? '',
            columns: fromEntity(entity),
            etag: entity.etag,
          });
        }
        return out;
      }),

    async create(partitionKey, rowKey, columns) {
      const table = await writer();
      return unless([409], undefined, async () => (await table.createEntity(toEntity(partitionKey, rowKey, columns))).etag ?? '');
    },

    async replace(partitionKey, rowKey, columns, etag) {
      const table = await writer();
      const entity = toEntity(partitionKey, rowKey, columns);
      if (etag === undefined) return (await table.upsertEntity(entity, 'Replace')).etag ?? '';
      // 412: written since it was read; 404: deleted since. Either way the race is lost.
      return unless([412, 404], undefined, async () => (await table.updateEntity(entity, 'Replace', { etag })).etag ?? '');
    },

    async remove(partitionKey, rowKey, etag) {
      const table = await writer();
      return unless([412, 404], false, async () => {
        await table.deleteEntity(partitionKey, rowKey, { etag });
        return true;
      });
    },
  };
}

type Entity = { partitionKey: string; rowKey: string } & Record<string, string | number | Edm<'Binary'>>;

function toEntity(partitionKey: string, rowKey: string, columns: EtagColumns): Entity {
  const entity: Entity = { partitionKey, rowKey };
  for (const [name, value] of Object.entries(columns)) {
    // Typed explicitly: the SDK's own Uint8Array check fails across realms (Jest), and for a view
    // that is not a Buffer it encodes the whole underlying ArrayBuffer.
    entity[name] =
      typeof value === 'object'
        ? { type: 'Binary', value: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') }
        : value;
  }
  return entity;
}

/** Columns the service adds to every entity; not ours. */
const SYSTEM_COLUMNS = new Set(['partitionKey', 'rowKey', 'etag', 'timestamp']);

/** Our columns of an entity: strings, numbers and bytes. */
function fromEntity(entity: Record<string, unknown>): EtagColumns {
  const columns: EtagColumns = {};
  for (const [name, value] of Object.entries(entity)) {
    if (SYSTEM_COLUMNS.has(name) || name.startsWith('odata.')) continue;
    if (typeof value === 'string' || typeof value === 'number') columns[name] = value;
    // The SDK answers Edm.Binary as a Buffer, possibly of another realm: copy it into this one.
    else if (ArrayBuffer.isView(value)) columns[name] = new Uint8Array(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }
  return columns;
}

/** The same rows in this process's memory, with the same ETag semantics; for tests and local runs. */
export function createMemoryEtagRows(): EtagRows {
  const rows = new Map<string, EtagRow>();
  let version = 0;
  const keyOf = (partitionKey: string, rowKey: string): string => `${partitionKey}\u0000${rowKey}`;
  const write = (partitionKey: string, rowKey: string, columns: EtagColumns): string => {
    const etag = `W/"${++version}"`;
    rows.set(keyOf(partitionKey, rowKey), { partitionKey, rowKey, columns: copy(columns), etag });
    return etag;
  };

  return {
    read(partitionKey, rowKey) {
      const row = rows.get(keyOf(partitionKey, rowKey));
      return Promise.resolve(row && { columns: copy(row.columns), etag: row.etag });
    },

    query(filter) {
      const match = (row: EtagRow): boolean =>
        'partitionKey' in filter ? row.partitionKey === filter.partitionKey : row.rowKey === filter.rowKey;
      return Promise.resolve([...rows.values()].filter(match).map((row) => ({ ...row, columns: copy(row.columns) })));
    },

    create(partitionKey, rowKey, columns) {
      if (rows.has(keyOf(partitionKey, rowKey))) return Promise.resolve(undefined);
      return Promise.resolve(write(partitionKey, rowKey, columns));
    },

    replace(partitionKey, rowKey, columns, etag) {
      if (etag !== undefined && rows.get(keyOf(partitionKey, rowKey))?.etag !== etag) return Promise.resolve(undefined);
      return Promise.resolve(write(partitionKey, rowKey, columns));
    },

    remove(partitionKey, rowKey, etag) {
      const key = keyOf(partitionKey, rowKey);
      if (rows.get(key)?.etag !== etag) return Promise.resolve(false);
      rows.delete(key);
      return Promise.resolve(true);
    },
  };
}

function copy(columns: EtagColumns): EtagColumns {
  return Object.fromEntries(
    Object.entries(columns).map(([name, value]) => [name, typeof value === 'object' ? new Uint8Array(value) : value]),
  );
}
