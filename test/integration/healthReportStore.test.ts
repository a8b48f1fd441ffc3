/**
 * The health report store against a real Azurite (in memory, on free ports) through the real
 * @azure/data-tables client, and its in-memory twin held to the same cases.
 */
import { randomBytes } from 'node:crypto';
import { startAzurite } from '../../local/emulators/azurite';
import type { Azurite } from '../../local/emulators/azurite';
import type { HealthCheckResult, HealthReport } from '../../shared/health/healthReport';
import {
  createMemoryHealthReportStore,
  createTableHealthReportStore,
  HEALTH_TABLE,
  MAX_PART_BYTES,
  MAX_REPORT_BYTES,
} from '../../shared/health/healthReportStore';
import type { HealthReportStore, VaultHealthState } from '../../shared/health/healthReportStore';
import { createTableClient, ensureTable } from '../../shared/storage/tableStorage';

let azurite: Azurite;

beforeAll(async () => {
  azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
});

afterAll(async () => {
  await azurite?.stop();
});

/** A report of `vaults` vaults with `checksPerVault` checks each; every third fails, its remedy carrying `noiseChars` random hex. */
function report(startedAt: string, opts: { vaults?: number; checksPerVault?: number; noiseChars?: number } = {}): HealthReport {
  const { vaults = 3, checksPerVault = 500, noiseChars = 200 } = opts;
  return {
    status: 'failed',
    startedAt,
    durationMs: 4321,
    vaults: Array.from({ length: vaults }, (_, v) => {
      const checks: HealthCheckResult[] = Array.from({ length: checksPerVault }, (_, i) => ({
        check: i % 2 === 0 ? 'getSecret' : 'expiry',
        target: `secret-${v}-${i}`,
        status: i % 3 === 0 ? 'failed' : 'ok',
        cause: i % 3 === 0 ? 'ForbiddenByRbac' : null,
        // Random hex keeps gzip honest; the accents check that non-ASCII text survives.
        remedy:
          i % 3 === 0
            ? `Grant the function app's identity "Key Vault Secrets User" on vault-${v} for secret-${v}-${i} — café ✓ ${randomBytes(noiseChars / 2).toString('hex')}`
            : null,
        durationMs: i,
      }));
      return { vault: `vault-${v}`, vaultUri: `https://vault-${v}.vault.azure.net`, status: 'failed', checks };
    }),
  };
}

function state(vault: string, overrides: Partial<VaultHealthState> = {}): VaultHealthState {
  return {
    vault,
    status: 'failed',
    since: '2025-03-01T10:00:00.000Z',
    lastChangeEventId: 'evt-1',
    lastChangeType: 'HealthCheckFailed',
    lastChangeAt: '2025-03-01T10:00:01.000Z',
    ...overrides,
  };
}

/** Every row of the health table, raw, as the service holds it. */
async function rawRows(): Promise<Array<Record<string, unknown>>> {
  const client = createTableClient(azurite.connectionString, HEALTH_TABLE);
  await ensureTable(client);
  const rows: Array<Record<string, unknown>> = [];
  for await (const row of client.listEntities()) rows.push(row);
  return rows;
}

const T0 = new Date('2025-03-01T10:00:00.000Z');
const at = (ms: number): Date => new Date(T0.getTime() + ms);

describe.each([
  ['in memory', () => createMemoryHealthReportStore(), true],
  ['in Table storage', () => createTableHealthReportStore(azurite.connectionString), false],
] as const)('HealthReportStore %s', (_kind, create, sharedInstance) => {
  /** Another instance of the app: its own store over the same storage (the same object in memory). */
  let stores: HealthReportStore[];
  const instance = (): HealthReportStore => {
    const store = sharedInstance ? (stores[0] ?? create()) : create();
    stores.push(store);
    return store;
  };

  beforeEach(async () => {
    stores = [];
    if (sharedInstance) return;
    // One table serves every test (the store's table name is fixed): start each from empty.
    const client = createTableClient(azurite.connectionString, HEALTH_TABLE);
    await ensureTable(client);
    for (const row of await rawRows()) await client.deleteEntity(String(row.partitionKey), String(row.rowKey));
  });

  it('has no report before the first is saved', async () => {
    await expect(instance().latestReport()).resolves.toBeUndefined();
  });

  it('round-trips a large report of 1,500 checks with long remedies', async () => {
    const store = instance();
    const big = report('2025-03-01T10:00:00.000Z');
    // Far past what one string property (32K UTF-16 characters) holds.
    expect(JSON.stringify(big).length).toBeGreaterThan(300_000);
    await store.saveReport(big);
    await expect(instance().latestReport()).resolves.toEqual(big);
  });

  it('keeps only the latest report', async () => {
    const store = instance();
    const first = report('2025-03-01T10:00:00.000Z', { vaults: 1, checksPerVault: 3 });
    const second = { ...report('2025-03-01T10:05:00.000Z', { vaults: 2, checksPerVault: 5 }), status: 'warning' as const };
    await store.saveReport(first);
    await store.saveReport(second);
    await expect(store.latestReport()).resolves.toEqual(second);
  });

  it('keeps the newer report when an older run finishes after it', async () => {
    const store = instance();
    const newer = report('2025-03-01T10:05:00.000Z', { vaults: 1, checksPerVault: 2 });
    await store.saveReport(newer);
    await store.saveReport(report('2025-03-01T10:00:00.000Z', { vaults: 1, checksPerVault: 4 }));
    await expect(store.latestReport()).resolves.toEqual(newer);
  });

  it('refuses a report that does not fit even compressed, and keeps the one it has', async () => {
    const store = instance();
    const kept = report('2025-03-01T10:00:00.000Z', { vaults: 1, checksPerVault: 2 });
    await store.saveReport(kept);
    const huge = report('2025-03-01T10:05:00.000Z', { vaults: 2, checksPerVault: 1500, noiseChars: 2000 });
    await expect(store.saveReport(huge)).rejects.toThrow(
      new RegExp(
        `^Health report too large to store: 2 vaults, 3000 checks, \\d+ characters of JSON compress to \\d+ bytes; a brokerhealth row holds at most ${MAX_REPORT_BYTES}$`,
      ),
    );
    await expect(store.latestReport()).resolves.toEqual(kept);
  });

  it('refuses a report whose startedAt is not a time', async () => {
    await expect(instance().saveReport(report('yesterday', { vaults: 1, checksPerVault: 1 }))).rejects.toThrow(
      'Health report not saved: startedAt is not an ISO 8601 time',
    );
  });

  it('round-trips vault states by alias, clearing fields that became null', async () => {
    const store = instance();
    await expect(store.loadStates()).resolves.toEqual(new Map());
    const odd = state('team/a#b?c', { status: 'warning', lastChangeType: null, lastChangeEventId: null, lastChangeAt: null });
    await store.saveState(state('vault-a'));
    await store.saveState(odd);
    await store.saveState(state('vault-b', { status: 'ok', lastChangeType: 'HealthCheckRecovered' }));
    // vault-a recovers and its change fields are reset.
    const recovered = state('vault-a', {
      status: 'ok',
      since: '2025-03-01T11:00:00.000Z',
      lastChangeEventId: null,
      lastChangeType: null,
      lastChangeAt: null,
    });
    await store.saveState(recovered);

    const states = await instance().loadStates();
    expect(states).toEqual(
      new Map([
        ['vault-a', recovered],
        ['team/a#b?c', odd],
        ['vault-b', state('vault-b', { status: 'ok', lastChangeType: 'HealthCheckRecovered' })],
      ]),
    );
  });

  it('refuses a second run lease while the first is held, and grants it after release', async () => {
    const a = instance();
    const b = instance();
    const release = await a.tryAcquireRunLease('run-a', 60_000, T0);
    expect(release).toBeInstanceOf(Function);
    await expect(b.tryAcquireRunLease('run-b', 60_000, at(1_000))).resolves.toBeUndefined();
    // The same holder gets no second lease either: one run at a time, whoever asks.
    await expect(a.tryAcquireRunLease('run-a', 60_000, at(2_000))).resolves.toBeUndefined();
    await release!();
    await release!();
    const second = await b.tryAcquireRunLease('run-b', 60_000, at(3_000));
    expect(second).toBeInstanceOf(Function);
    await second!();
  });

  it('grants the run lease once the holder has let it expire, and a late release does not free the new one', async () => {
    const a = instance();
    const b = instance();
    const c = instance();
    const staleRelease = await a.tryAcquireRunLease('run-a', 60_000, T0);
    expect(staleRelease).toBeDefined();
    await expect(b.tryAcquireRunLease('run-b', 60_000, at(59_999))).resolves.toBeUndefined();
    const releaseB = await b.tryAcquireRunLease('run-b', 60_000, at(60_000));
    expect(releaseB).toBeDefined();
    // Run A finishes late: its release must leave B's lease in place.
    await staleRelease!();
    await expect(c.tryAcquireRunLease('run-c', 60_000, at(61_000))).resolves.toBeUndefined();
    await releaseB!();
    await expect(c.tryAcquireRunLease('run-c', 60_000, at(62_000))).resolves.toBeDefined();
  });

  it.each([
    ['with no lease row yet', 0],
    ['over an expired lease', 1],
  ])('grants exactly one of eight concurrent acquires %s', async (_label, expiredLeases) => {
    if (expiredLeases > 0) await expect(instance().tryAcquireRunLease('old-run', 1_000, T0)).resolves.toBeDefined();
    const contenders = Array.from({ length: 8 }, () => instance());
    const results = await Promise.all(contenders.map((store, i) => store.tryAcquireRunLease(`run-${i}`, 60_000, at(5_000))));
    expect(results.filter((release) => release !== undefined)).toHaveLength(1);
  });

  it.each([
    ['an empty holder', '', 1_000, T0, 'tryAcquireRunLease: holder is empty'],
    ['a zero ttl', 'run', 0, T0, 'tryAcquireRunLease: ttlMs must be a positive number'],
    ['an infinite ttl', 'run', Infinity, T0, 'tryAcquireRunLease: ttlMs must be a positive number'],
    ['an invalid now', 'run', 1_000, new Date('nope'), 'tryAcquireRunLease: now is an invalid Date'],
  ])('refuses a run lease with %s', async (_label, holder, ttlMs, now, message) => {
    await expect(instance().tryAcquireRunLease(holder, ttlMs, now)).rejects.toThrow(new RangeError(message));
  });
});

describe('HealthReportStore in Table storage, as stored', () => {
  beforeEach(async () => {
    const client = createTableClient(azurite.connectionString, HEALTH_TABLE);
    for (const row of await rawRows()) await client.deleteEntity(String(row.partitionKey), String(row.rowKey));
  });

  it('stores a large report compressed, over several binary columns of one row', async () => {
    await createTableHealthReportStore(azurite.connectionString).saveReport(report('2025-03-01T10:00:00.000Z'));
    const rows = await rawRows();
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toMatchObject({
      partitionKey: 'report',
      rowKey: 'latest',
      startedAt: '2025-03-01T10:00:00.000Z',
      status: 'failed',
      encoding: 'gzip-json',
    });
    expect(row.parts).toBeGreaterThanOrEqual(2);
    expect(row.bytes).toBeGreaterThan(MAX_PART_BYTES);
    const parts = Object.keys(row).filter((name) => /^part\d\d$/.test(name));
    expect(parts).toHaveLength(row.parts as number);
  });

  it('fits a report just under the limit into one row the service accepts', async () => {
    const store = createTableHealthReportStore(azurite.connectionString);
    // About 964 KB once compressed: the 15th part is nearly full.
    const nearLimit = report('2025-03-01T10:00:00.000Z', { vaults: 1, checksPerVault: 1800, noiseChars: 2900 });
    await store.saveReport(nearLimit);
    const [row] = await rawRows();
    expect(row!.parts).toBe(15);
    await expect(store.latestReport()).resolves.toEqual(nearLimit);
  });

  it('keeps each vault state in a readable column next to a hashed row key', async () => {
    await createTableHealthReportStore(azurite.connectionString).saveState(state('team/a#b?c', { lastChangeAt: null }));
    const rows = await rawRows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ partitionKey: 'state', vault: 'team/a#b?c', status: 'failed', lastChangeEventId: 'evt-1' });
    expect(rows[0]!.rowKey).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0]).not.toHaveProperty('lastChangeAt');
  });
});
