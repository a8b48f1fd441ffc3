import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { constants as zlibConstants, gunzip, gzip } from 'node:zlib';
import type { Edm, TableClient } from '@azure/data-tables';
import { odata } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createTableClient, ensureTable, tableErrorStatus } from '../storage/tableStorage';
import type { HealthReport, HealthStatus } from './healthReport';

/** Table of the latest report, the per-vault states and the run lease, in `AzureWebJobsStorage`. */
export const HEALTH_TABLE = 'brokerhealth';
/** The largest binary property Table storage accepts (64 KiB). */
export const MAX_PART_BYTES = 64 * 1024;
/**
 * Report parts in one row. An entity holds at most 1 MiB, each binary property costing its bytes
 * plus about 20 bytes of name and type; 15 full parts leave some 60 KiB for the other columns.
 */
export const MAX_REPORT_PARTS = 15;
/** The largest gzip-compressed report JSON {@link HealthReportStore.saveReport} stores (960 KiB). */
export const MAX_REPORT_BYTES = MAX_PART_BYTES * MAX_REPORT_PARTS;
/** Read-compare-write rounds lost to concurrent report writers before giving up. */
const MAX_CONFLICT_RETRIES = 5;

const REPORT_PARTITION = 'report';
const REPORT_ROW = 'latest';
const STATE_PARTITION = 'state';
const LEASE_PARTITION = 'lease';
const LEASE_ROW = 'run';
const REPORT_ENCODING = 'gzip-json';
const HEALTH_STATUSES: readonly HealthStatus[] = ['ok', 'warning', 'failed', 'skipped'];
const CHANGE_TYPES = ['HealthCheckFailed', 'HealthCheckRecovered'] as const;

/** What the health check remembers about one vault to notify on a change of state only. */
export interface VaultHealthState {
  vault: string;
  status: HealthStatus;
  /** When the vault entered `status`, ISO 8601 UTC. */
  since: string;
  lastChangeEventId: string | null;
  lastChangeType: 'HealthCheckFailed' | 'HealthCheckRecovered' | null;
  /** ISO 8601 UTC. */
  lastChangeAt: string | null;
}

/**
 * Where the health check keeps its latest report, the per-vault states it compares against, and
 * the lease that lets one run at a time across instances.
 */
export interface HealthReportStore {
  /**
   * Stores `report` as the latest, unless the stored one started later (a run that outlived its
   * lease and finishes after its successor must not hide the newer result). The JSON is
   * gzip-compressed and split over up to {@link MAX_REPORT_PARTS} binary columns of one row, so
   * a reader sees the whole old report or the whole new one, never a mix.
   * @throws Error when the compressed report exceeds {@link MAX_REPORT_BYTES}, or `startedAt` is
   * not a time.
   */
  saveReport(report: HealthReport): Promise<void>;
  /**
   * The latest report, or undefined before the first.
   * @throws Error when the stored row is incomplete or in an unknown encoding.
   */
  latestReport(): Promise<HealthReport | undefined>;
  /** Every vault's state, by vault alias. Rows with an unknown status are left out. */
  loadStates(): Promise<Map<string, VaultHealthState>>;
  /** Writes one vault's state, replacing what was there (null fields are cleared). */
  saveState(state: VaultHealthState): Promise<void>;
  /**
   * One run at a time across instances: a lease row with an expiry; returns a release fn, or
   * undefined when another run holds an unexpired lease.
   *
   * Taken by creating the row when it is absent, or by replacing it, conditional on its ETag,
   * when it has expired by `now` (default: the current time); a lost race answers undefined.
   * Releasing deletes the row only if it is still this lease (same ETag), so a run that outlived
   * its lease cannot free its successor's; it is idempotent. Expiry is judged by the caller's
   * clock, so instances' clocks should agree to well within `ttlMs`.
   * @throws RangeError when `holder` is empty, `ttlMs` is not a positive number or `now` is invalid.
   */
  tryAcquireRunLease(holder: string, ttlMs: number, now?: Date): Promise<(() => Promise<void>) | undefined>;
}

/**
 * The store in Azure Table storage (`AzureWebJobsStorage`), table {@link HEALTH_TABLE}; created on
 * first use. `credential` serves identity-based storage (default `DefaultAzureCredential`).
 */
export function createTableHealthReportStore(storage: StorageSettings | string, credential?: TokenCredential): HealthReportStore {
  return createStore(new TableRows(storage, credential));
}

/**
 * The store in this process's memory, with the same semantics and limits (reports go through
 * the same encoding); for tests and local runs.
 */
export function createMemoryHealthReportStore(): HealthReportStore {
  return createStore(new MemoryRows());
}

// ---- the store, over rows with optimistic concurrency (shared, so both behave the same) ----

/** Column values; bytes are told apart with `typeof value === 'object'`, since `instanceof Uint8Array` fails for a Buffer of another realm (Jest). */
type Value = string | number | Uint8Array;
type Columns = Record<string, Value>;

/** Rows of {@link HEALTH_TABLE}, with ETags. Writes answer the new ETag, or undefined when they lose a race. */
interface Rows {
  read(partitionKey: string, rowKey: string, select?: readonly string[]): Promise<{ columns: Columns; etag: string } | undefined>;
  list(partitionKey: string): Promise<Columns[]>;
  /** Writes the row if it does not exist. */
  create(partitionKey: string, rowKey: string, columns: Columns): Promise<string | undefined>;
  /** Replaces the row if its ETag is still `etag`; with no `etag`, writes it whatever is there. */
  replace(partitionKey: string, rowKey: string, columns: Columns, etag?: string): Promise<string | undefined>;
  /** Deletes the row if its ETag is still `etag`; false when it changed or is gone. */
  remove(partitionKey: string, rowKey: string, etag: string): Promise<boolean>;
}

function createStore(rows: Rows): HealthReportStore {
  return {
    async saveReport(report) {
      const startedAt = timeOf(report.startedAt);
      const columns = await encodeReport(report);
      for (let round = 0; round < MAX_CONFLICT_RETRIES; round++) {
        // Only the start time: the parts are up to a megabyte and not needed to decide.
        const current = await rows.read(REPORT_PARTITION, REPORT_ROW, ['startedAt']);
        if (!current) {
          if ((await rows.create(REPORT_PARTITION, REPORT_ROW, columns)) !== undefined) return;
          continue;
        }
        const storedStart = Date.parse(String(current.columns.startedAt));
        if (storedStart > startedAt) return;
        if ((await rows.replace(REPORT_PARTITION, REPORT_ROW, columns, current.etag)) !== undefined) return;
      }
      throw new Error(`Health report not saved: ${MAX_CONFLICT_RETRIES} concurrent writers got there first`);
    },

    async latestReport() {
      const row = await rows.read(REPORT_PARTITION, REPORT_ROW);
      return row && decodeReport(row.columns);
    },

    async loadStates() {
      const states = new Map<string, VaultHealthState>();
      for (const columns of await rows.list(STATE_PARTITION)) {
        const state = stateOf(columns);
        if (state) states.set(state.vault, state);
      }
      return states;
    },

    async saveState(state) {
      if (state.vault === '') throw new RangeError('saveState: vault is empty');
      const columns: Columns = { vault: state.vault, status: state.status, since: state.since };
      // Table storage has no nulls: a null is a missing column, and Replace drops old ones.
      if (state.lastChangeEventId !== null) columns.lastChangeEventId = state.lastChangeEventId;
      if (state.lastChangeType !== null) columns.lastChangeType = state.lastChangeType;
      if (state.lastChangeAt !== null) columns.lastChangeAt = state.lastChangeAt;
      await rows.replace(STATE_PARTITION, keyOf(state.vault), columns);
    },

    async tryAcquireRunLease(holder, ttlMs, now = new Date()) {
      if (holder === '') throw new RangeError('tryAcquireRunLease: holder is empty');
      if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError('tryAcquireRunLease: ttlMs must be a positive number');
      const at = now.getTime();
      if (Number.isNaN(at)) throw new RangeError('tryAcquireRunLease: now is an invalid Date');
      const columns: Columns = { holder, acquiredAt: now.toISOString(), expiresAt: new Date(at + ttlMs).toISOString() };
      const current = await rows.read(LEASE_PARTITION, LEASE_ROW);
      let etag: string | undefined;
      if (!current) {
        etag = await rows.create(LEASE_PARTITION, LEASE_ROW, columns);
      } else {
        // An unreadable expiry counts as expired, so a damaged row cannot stop every run for good.
        if (Date.parse(String(current.columns.expiresAt)) > at) return undefined;
        etag = await rows.replace(LEASE_PARTITION, LEASE_ROW, columns, current.etag);
      }
      if (etag === undefined) return undefined;
      const ours = etag;
      let released = false;
      return async () => {
        if (released) return;
        // False when the lease expired and another run took it: that one is not ours to free.
        await rows.remove(LEASE_PARTITION, LEASE_ROW, ours);
        released = true;
      };
    },
  };
}

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

async function encodeReport(report: HealthReport): Promise<Columns> {
  const json = JSON.stringify(report);
  const packed = await gzipAsync(Buffer.from(json, 'utf8'), { level: zlibConstants.Z_BEST_COMPRESSION });
  if (packed.length > MAX_REPORT_BYTES) {
    const checks = report.vaults.reduce((n, vault) => n + vault.checks.length, 0);
    throw new Error(
      `Health report too large to store: ${report.vaults.length} vaults, ${checks} checks, ${json.length} characters of JSON ` +
        `compress to ${packed.length} bytes; a ${HEALTH_TABLE} row holds at most ${MAX_REPORT_BYTES}`,
    );
  }
  const columns: Columns = {
    startedAt: report.startedAt,
    status: report.status,
    encoding: REPORT_ENCODING,
    bytes: packed.length,
    parts: Math.ceil(packed.length / MAX_PART_BYTES),
  };
  for (let i = 0; i * MAX_PART_BYTES < packed.length; i++) {
    columns[partName(i)] = packed.subarray(i * MAX_PART_BYTES, (i + 1) * MAX_PART_BYTES);
  }
  return columns;
}

async function decodeReport(columns: Columns): Promise<HealthReport> {
  if (columns.encoding !== REPORT_ENCODING) {
    throw new Error(`Stored health report has an unknown encoding "${String(columns.encoding)}"; expected ${REPORT_ENCODING}`);
  }
  const parts: Uint8Array[] = [];
  for (let i = 0; i < Number(columns.parts); i++) {
    const part = columns[partName(i)];
    if (typeof part !== 'object') throw new Error(`Stored health report is incomplete: ${partName(i)} is missing`);
    parts.push(part);
  }
  const packed = Buffer.concat(parts);
  if (packed.length !== columns.bytes) {
    throw new Error(`Stored health report is incomplete: ${packed.length} of ${String(columns.bytes)} bytes`);
  }
  return JSON.parse((await gunzipAsync(packed)).toString('utf8')) as HealthReport;
}

function partName(index: number): string {
  return `part${String(index).padStart(2, '0')}`;
}

function stateOf(columns: Columns): VaultHealthState | undefined {
  const { vault, status, since } = columns;
  if (typeof vault !== 'string' || typeof since !== 'string' || !HEALTH_STATUSES.includes(status as HealthStatus)) return undefined;
  const changeType = CHANGE_TYPES.find((type) => type === columns.lastChangeType) ?? null;
  return {
    vault,
    status: status as HealthStatus,
    since,
    lastChangeEventId: typeof columns.lastChangeEventId === 'string' ? columns.lastChangeEventId : null,
    lastChangeType: changeType,
    lastChangeAt: typeof columns.lastChangeAt === 'string' ? columns.lastChangeAt : null,
  };
}

function timeOf(iso: string): number {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) throw new Error('Health report not saved: startedAt is not an ISO 8601 time');
  return time;
}

/**
 * Vault aliases become row keys, which may not hold `/ \ # ?` or control characters; a SHA-256 hex
 * digest always can. The readable alias is kept in its own column.
 */
function keyOf(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

// ---- Azure Table storage ----

/** Columns the service adds to every entity; not ours. */
const SYSTEM_COLUMNS = new Set(['partitionKey', 'rowKey', 'etag', 'timestamp', 'odata.metadata']);

class TableRows implements Rows {
  private client: TableClient | undefined;

  constructor(
    private readonly storage: StorageSettings | string,
    private readonly credential: TokenCredential | undefined,
  ) {}

  async read(partitionKey: string, rowKey: string, select?: readonly string[]): Promise<{ columns: Columns; etag: string } | undefined> {
    const client = this.reader();
    try {
      const entity = await client.getEntity(partitionKey, rowKey, select && { queryOptions: { select: [...select] } });
      return { columns: fromEntity(entity), etag: entity.etag };
    } catch (err: unknown) {
      if (tableErrorStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async list(partitionKey: string): Promise<Columns[]> {
    const client = this.reader();
    const out: Columns[] = [];
    try {
      for await (const entity of client.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${partitionKey}` } })) {
        out.push(fromEntity(entity));
      }
    } catch (err: unknown) {
      if (tableErrorStatus(err) === 404) return [];
      throw err;
    }
    return out;
  }

  async create(partitionKey: string, rowKey: string, columns: Columns): Promise<string | undefined> {
    const client = await this.table();
    try {
      return (await client.createEntity(toEntity(partitionKey, rowKey, columns))).etag ?? '';
    } catch (err: unknown) {
      if (tableErrorStatus(err) === 409) return undefined;
      throw err;
    }
  }

  async replace(partitionKey: string, rowKey: string, columns: Columns, etag?: string): Promise<string | undefined> {
    const client = await this.table();
    const entity = toEntity(partitionKey, rowKey, columns);
    if (etag === undefined) return (await client.upsertEntity(entity, 'Replace')).etag ?? '';
    try {
      return (await client.updateEntity(entity, 'Replace', { etag })).etag ?? '';
    } catch (err: unknown) {
      // 412: written since it was read; 404: deleted since. Either way the race is lost.
      const status = tableErrorStatus(err);
      if (status === 412 || status === 404) return undefined;
      throw err;
    }
  }

  async remove(partitionKey: string, rowKey: string, etag: string): Promise<boolean> {
    const client = await this.table();
    try {
      await client.deleteEntity(partitionKey, rowKey, { etag });
      return true;
    } catch (err: unknown) {
      const status = tableErrorStatus(err);
      if (status === 412 || status === 404) return false;
      throw err;
    }
  }

  /**
   * For reads: a missing table reads as empty rather than being created, so a reader with only
   * Storage Table Data Reader (the deployer's smoke test) can read the report.
   */
  private reader(): TableClient {
    this.client ??= createTableClient(this.storage, HEALTH_TABLE, this.credential);
    return this.client;
  }

  /** For writes: the table is created on first use. */
  private async table(): Promise<TableClient> {
    const client = this.reader();
    await ensureTable(client);
    return client;
  }
}

function toEntity(
  partitionKey: string,
  rowKey: string,
  columns: Columns,
): { partitionKey: string; rowKey: string } & Record<string, string | number | Edm<'Binary'>> {
  const entity: { partitionKey: string; rowKey: string } & Record<string, string | number | Edm<'Binary'>> = { partitionKey, rowKey };
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

function fromEntity(entity: Record<string, unknown>): Columns {
  const columns: Columns = {};
  for (const [name, value] of Object.entries(entity)) {
    if (SYSTEM_COLUMNS.has(name)) continue;
    if (typeof value === 'string' || typeof value === 'number') columns[name] = value;
    // The SDK answers Edm.Binary as a Buffer, possibly of another realm: copy it into this one.
    else if (ArrayBuffer.isView(value)) columns[name] = new Uint8Array(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }
  return columns;
}

// ---- memory ----

class MemoryRows implements Rows {
  private readonly rows = new Map<string, { columns: Columns; etag: string }>();
  private nextVersion = 1;

  read(partitionKey: string, rowKey: string): Promise<{ columns: Columns; etag: string } | undefined> {
    const row = this.rows.get(memoryKey(partitionKey, rowKey));
    return Promise.resolve(row && { columns: copy(row.columns), etag: row.etag });
  }

  list(partitionKey: string): Promise<Columns[]> {
    const prefix = memoryKey(partitionKey, '');
    return Promise.resolve([...this.rows.entries()].filter(([key]) => key.startsWith(prefix)).map(([, row]) => copy(row.columns)));
  }

  create(partitionKey: string, rowKey: string, columns: Columns): Promise<string | undefined> {
    const key = memoryKey(partitionKey, rowKey);
    if (this.rows.has(key)) return Promise.resolve(undefined);
    return Promise.resolve(this.write(key, columns));
  }

  replace(partitionKey: string, rowKey: string, columns: Columns, etag?: string): Promise<string | undefined> {
    const key = memoryKey(partitionKey, rowKey);
    if (etag !== undefined && this.rows.get(key)?.etag !== etag) return Promise.resolve(undefined);
    return Promise.resolve(this.write(key, columns));
  }

  remove(partitionKey: string, rowKey: string, etag: string): Promise<boolean> {
    const key = memoryKey(partitionKey, rowKey);
    if (this.rows.get(key)?.etag !== etag) return Promise.resolve(false);
    this.rows.delete(key);
    return Promise.resolve(true);
  }

  private write(key: string, columns: Columns): string {
    const etag = `W/"${this.nextVersion++}"`;
    this.rows.set(key, { columns: copy(columns), etag });
    return etag;
  }
}

function memoryKey(partitionKey: string, rowKey: string): string {
  return `${partitionKey}\u0000${rowKey}`;
}

function copy(columns: Columns): Columns {
  return Object.fromEntries(
    Object.entries(columns).map(([name, value]) => [name, typeof value === 'object' ? new Uint8Array(value) : value]),
  );
}
