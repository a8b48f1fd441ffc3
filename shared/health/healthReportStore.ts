import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { constants as zlibConstants, gunzip, gzip } from 'node:zlib';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createMemoryEtagRows, createTableEtagRows } from '../storage/etagRows';
import type { EtagColumns as Columns, EtagRows } from '../storage/etagRows';
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
  return createStore(createTableEtagRows(storage, HEALTH_TABLE, credential));
}

/**
 * The store in this process's memory, with the same semantics and limits (reports go through
 * the same encoding); for tests and local runs.
 */
export function createMemoryHealthReportStore(): HealthReportStore {
  return createStore(createMemoryEtagRows());
}

// ---- the store, over rows with optimistic concurrency (shared/storage/etagRows.ts, so both behave the same) ----

function createStore(rows: EtagRows): HealthReportStore {
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
      for (const row of await rows.query({ partitionKey: STATE_PARTITION })) {
        const state = stateOf(row.columns);
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
