/**
 * Where rotations are kept: table {@link ROTATION_TABLE} of `AzureWebJobsStorage`, one row per rotation
 * (PartitionKey: the vault alias and secret name, encoded; RowKey: the rotation id) and, in the same
 * partition, the secret's `active` marker naming the rotation in progress. The marker is created and
 * deleted with ETag conditions, so two rotations of one secret never overlap: of two instances racing
 * to start, exactly one creates the marker and the other gets the active rotation back.
 * See docs/rotation.md.
 */
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createMemoryEtagRows, createTableEtagRows } from '../storage/etagRows';
import type { EtagColumns as Columns, EtagRows } from '../storage/etagRows';
import type { RotationRecord } from './rotationTypes';
import { ROTATION_STATES } from './rotationTypes';

export const ROTATION_TABLE = 'brokerrotations';
/** RowKey of a secret's marker; rotation ids start with `rot-`, so none collides with it. */
export const ACTIVE_ROW = 'active';
/** Rounds lost to a racing writer before giving up (each round reads and writes once). */
const MAX_ROUNDS = 5;

/** A save lost to another writer: the record changed since it was read. */
export class RotationConflictError extends Error {
  override readonly name = 'RotationConflictError';
  constructor(readonly rotationId: string) {
    super(`Rotation ${rotationId} was changed by another run since it was read`);
  }
}

/** Outcome of {@link RotationStore.begin}. */
export type BeginOutcome = { won: true; record: RotationRecord } | { won: false; active: RotationRecord };

export interface RotationStore {
  /**
   * Writes `record` (state `started`) and makes it the secret's active rotation, unless another one
   * is active: then `record` is withdrawn and the active one is answered. A marker left by a
   * finished or vanished rotation is replaced.
   */
  begin(record: RotationRecord): Promise<BeginOutcome>;
  /**
   * Writes `record`, conditional on its ETag (when it has one); answers it with the new ETag.
   * @throws RotationConflictError when the row changed since it was read.
   */
  save(record: RotationRecord): Promise<RotationRecord>;
  /** Releases the secret's marker if it still names `record`; idempotent. */
  release(record: Pick<RotationRecord, 'vault' | 'secret' | 'id'>): Promise<void>;
  /** The secret's active rotation (failed ones included), or undefined. */
  active(vault: string, secret: string): Promise<RotationRecord | undefined>;
  get(vault: string, secret: string, id: string): Promise<RotationRecord | undefined>;
  /** Every rotation of a secret, oldest first. */
  list(vault: string, secret: string): Promise<RotationRecord[]>;
  /** Every active rotation across secrets (one query for the markers). */
  listActive(): Promise<RotationRecord[]>;
}

/** The store in Table storage; the table is created on first write. `credential` serves identity-based storage. */
export function createTableRotationStore(storage: StorageSettings | string, credential?: TokenCredential): RotationStore {
  return createStore(createTableEtagRows(storage, ROTATION_TABLE, credential));
}

/** The same store in this process's memory, with the same ETag semantics; for tests. */
export function createMemoryRotationStore(): RotationStore {
  return createStore(createMemoryEtagRows());
}

/**
 * The partition of a secret's rows: base64url of `vault/secret` (Table keys may not hold `/`, `\`, `#`, `?`),
 * the name in lower case: Key Vault names are case-insensitive, so `Demo-App-Secret` and
 * `demo-app-secret` share one active marker and never rotate at once.
 */
export function rotationPartition(vault: string, secret: string): string {
  return Buffer.from(`${vault}/${secret.toLowerCase()}`, 'utf8').toString('base64url');
}

/** A string column of a row; the rotation store writes nothing else (the shared rows also carry numbers and bytes). */
function text(columns: Columns, name: string): string | undefined {
  const value = columns[name];
  return typeof value === 'string' ? value : undefined;
}

function createStore(rows: EtagRows): RotationStore {
  const columnsOf = (record: RotationRecord): Columns => {
    const persisted: RotationRecord = { ...record };
    delete persisted.etag;
    return { vault: record.vault, secret: record.secret, state: record.state, record: JSON.stringify(persisted) };
  };
  const recordOf = (columns: Columns, etag: string): RotationRecord | undefined => {
    const json = text(columns, 'record');
    if (!json) return undefined;
    const parsed = JSON.parse(json) as RotationRecord;
    if (!(ROTATION_STATES as readonly string[]).includes(parsed.state)) return undefined;
    return { ...parsed, holders: parsed.holders ?? [], etag };
  };
  const get = async (vault: string, secret: string, id: string): Promise<RotationRecord | undefined> => {
    const row = await rows.read(rotationPartition(vault, secret), id);
    return row && recordOf(row.columns, row.etag);
  };
  /** The marker and the rotation it names, if that rotation is still in progress. */
  const activeOf = async (pk: string, vault: string, secret: string) => {
    const marker = await rows.read(pk, ACTIVE_ROW);
    if (!marker) return { marker: undefined, record: undefined };
    const record = await get(vault, secret, text(marker.columns, 'rotationId') ?? '');
    return { marker, record: record && record.state !== 'retired' ? record : undefined };
  };

  return {
    async begin(record) {
      const pk = rotationPartition(record.vault, record.secret);
      const fresh: RotationRecord = { ...record };
      delete fresh.etag;
      const etag = await rows.create(pk, record.id, columnsOf(fresh));
      if (etag === undefined) throw new Error(`Rotation ${record.id} already exists`);
      const marker: Columns = { vault: record.vault, secret: record.secret, rotationId: record.id };
      for (let round = 0; round < MAX_ROUNDS; round++) {
        if ((await rows.create(pk, ACTIVE_ROW, marker)) !== undefined) return { won: true, record: { ...fresh, etag } };
        const current = await activeOf(pk, record.vault, record.secret);
        if (current.record) {
          await rows.remove(pk, record.id, etag);
          return { won: false, active: current.record };
        }
        // The marker names a finished or missing rotation: take it over, unless someone else does first.
        if (current.marker && (await rows.replace(pk, ACTIVE_ROW, marker, current.marker.etag)) !== undefined) {
          return { won: true, record: { ...fresh, etag } };
        }
      }
      await rows.remove(pk, record.id, etag);
      throw new Error(`Rotation of ${record.vault}/${record.secret} not started: ${MAX_ROUNDS} concurrent starts got there first`);
    },

    async save(record) {
      const pk = rotationPartition(record.vault, record.secret);
      const etag = await rows.replace(pk, record.id, columnsOf(record), record.etag);
      if (etag === undefined) throw new RotationConflictError(record.id);
      return { ...record, etag };
    },

    async release(record) {
      const pk = rotationPartition(record.vault, record.secret);
      const marker = await rows.read(pk, ACTIVE_ROW);
      if (marker && text(marker.columns, 'rotationId') === record.id) await rows.remove(pk, ACTIVE_ROW, marker.etag);
    },

    async active(vault, secret) {
      return (await activeOf(rotationPartition(vault, secret), vault, secret)).record;
    },

    get,

    async list(vault, secret) {
      const found = await rows.query({ partitionKey: rotationPartition(vault, secret) });
      return found
        .filter((r) => r.rowKey !== ACTIVE_ROW)
        .flatMap((r) => {
          const record = recordOf(r.columns, r.etag);
          return record ? [record] : [];
        })
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    },

    async listActive() {
      const markers = await rows.query({ rowKey: ACTIVE_ROW });
      const out: RotationRecord[] = [];
      for (const m of markers) {
        const vault = text(m.columns, 'vault');
        const secret = text(m.columns, 'secret');
        if (vault === undefined || secret === undefined) continue;
        const record = await get(vault, secret, text(m.columns, 'rotationId') ?? '');
        if (record && record.state !== 'retired') out.push(record);
      }
      return out;
    },
  };
}
