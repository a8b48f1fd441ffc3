/**
 * The adoption store against a real Azurite (in memory, on free ports) through the real
 * @azure/data-tables client: one partition per secret, one row per caller, merged with what
 * another instance stored, transactions past 100 rows, and the tracker's flushes bounded to one
 * write per caller whatever the read rate.
 */
import { startAzurite } from '../../local/emulators/azurite';
import type { Azurite } from '../../local/emulators/azurite';
import { AdoptionTracker } from '../../shared/adoption/adoptionTracker';
import type { AdoptionRow } from '../../shared/adoption/adoptionTypes';
import { ADOPTION_TABLE, createTableAdoptionStore } from '../../shared/adoption/tableAdoptionStore';
import { createTableClient } from '../../shared/storage/tableStorage';

const V1 = '1'.repeat(32);
const V2 = '2'.repeat(32);

let azurite: Azurite;

beforeAll(async () => {
  azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
});

afterAll(async () => {
  await azurite?.stop();
});

const row = (secret: string, caller: string, version: string, since: string, lastRead: string, vault = 'default'): AdoptionRow => ({
  vault,
  secret,
  caller,
  version,
  since,
  lastRead,
});

const sorted = (rows: AdoptionRow[]) => [...rows].sort((a, b) => `${a.secret}/${a.caller}`.localeCompare(`${b.secret}/${b.caller}`));

describe('table adoption store', () => {
  it('answers nothing before anything was written (no table yet)', async () => {
    const store = createTableAdoptionStore(azurite.connectionString);
    expect(await store.read('default', 'never-read')).toEqual([]);
  });

  it('keeps one row per caller in one partition per secret, callers with characters Table keys refuse included', async () => {
    const store = createTableAdoptionStore(azurite.connectionString);
    const rows = [
      row('Orders-Key', 'erp', V1, '2026-12-01T10:00:00.000Z', '2026-12-01T10:05:00.000Z'),
      row('Orders-Key', 'team/crm #2?', V1, '2026-12-01T10:01:00.000Z', '2026-12-01T10:02:00.000Z'),
      row('Orders-Key', 'erp', V1, '2026-12-01T10:00:00.000Z', '2026-12-01T10:05:00.000Z', 'partner'),
      row('other-key', 'erp', V2, '2026-12-01T10:00:00.000Z', '2026-12-01T10:00:00.000Z'),
    ];
    await store.write(rows);
    expect(sorted(await store.read('default', 'orders-key'))).toEqual(sorted([rows[0]!, rows[1]!]));
    expect(await store.read('partner', 'ORDERS-KEY')).toEqual([rows[2]]);
    const partitions = new Set<string>();
    for await (const e of createTableClient(azurite.connectionString, ADOPTION_TABLE).listEntities()) partitions.add(e.partitionKey ?? '');
    expect(partitions).toEqual(new Set(['default|orders-key', 'partner|orders-key', 'default|other-key']));
    expect((await store.readAll()).length).toBeGreaterThanOrEqual(4);
  });

  it("merges with another instance's row: the earliest since of a version, the later read between versions", async () => {
    const a = createTableAdoptionStore(azurite.connectionString);
    const b = createTableAdoptionStore(azurite.connectionString);
    await a.write([row('merge-key', 'erp', V2, '2026-12-01T10:00:00.000Z', '2026-12-01T10:10:00.000Z')]);
    await b.write([row('merge-key', 'erp', V2, '2026-12-01T10:05:00.000Z', '2026-12-01T10:20:00.000Z')]);
    expect(await a.read('default', 'merge-key')).toEqual([
      row('merge-key', 'erp', V2, '2026-12-01T10:00:00.000Z', '2026-12-01T10:20:00.000Z'),
    ]);
    // An instance that last saw the old version, earlier: it does not undo the move.
    await b.write([row('merge-key', 'erp', V1, '2026-11-01T00:00:00.000Z', '2026-12-01T10:15:00.000Z')]);
    expect((await a.read('default', 'merge-key'))[0]?.version).toBe(V2);
    // A later read of another version replaces it.
    await b.write([row('merge-key', 'erp', V1, '2026-12-01T10:30:00.000Z', '2026-12-01T10:30:00.000Z')]);
    expect(await a.read('default', 'merge-key')).toEqual([
      row('merge-key', 'erp', V1, '2026-12-01T10:30:00.000Z', '2026-12-01T10:30:00.000Z'),
    ]);
  });

  it('writes more callers of one secret than one transaction holds', async () => {
    const store = createTableAdoptionStore(azurite.connectionString);
    const rows = Array.from({ length: 150 }, (_, i) =>
      row('busy-key', `caller-${i}`, V1, '2026-12-01T10:00:00.000Z', '2026-12-01T10:00:00.000Z'),
    );
    await store.write(rows);
    await store.write(rows.map((r) => ({ ...r, lastRead: '2026-12-01T11:00:00.000Z' })));
    const stored = await store.read('default', 'busy-key');
    expect(stored).toHaveLength(150);
    expect(new Set(stored.map((r) => r.lastRead))).toEqual(new Set(['2026-12-01T11:00:00.000Z']));
  });

  it('says a storage failure by status and code, never with a response body', async () => {
    const store = createTableAdoptionStore(
      azurite.connectionString.replace(/AccountKey=[^;]+/, `AccountKey=${Buffer.alloc(64).toString('base64')}`),
    );
    await expect(store.write([row('denied-key', 'erp', V1, '2026-12-01T10:00:00.000Z', '2026-12-01T10:00:00.000Z')])).rejects.toThrow(
      /^table brokeradoption: 403 [A-Za-z ]+$/,
    );
  });
});

describe('tracker over the table store', () => {
  it('writes one row per secret and caller per flush, whatever the read rate', async () => {
    const client = createTableClient(azurite.connectionString, ADOPTION_TABLE);
    let writes = 0;
    const table = createTableAdoptionStore(azurite.connectionString);
    const tracker = new AdoptionTracker({
      store: () => ({
        ...table,
        write: (rows) => {
          writes += rows.length;
          return table.write(rows);
        },
        read: (v, s) => table.read(v, s),
        readAll: () => table.readAll(),
      }),
      log: () => undefined,
    });
    for (let i = 0; i < 20_000; i++) tracker.record('default', 'hot-key', `caller-${i % 3}`, V1);
    await tracker.flush();
    for (let i = 0; i < 20_000; i++) tracker.record('default', 'hot-key', `caller-${i % 3}`, V1);
    await tracker.flush();
    tracker.dispose();
    expect(writes).toBe(6);
    const stored = [];
    for await (const e of client.listEntities({ queryOptions: { filter: "PartitionKey eq 'default|hot-key'" } })) stored.push(e.rowKey);
    expect(stored.sort()).toEqual(['caller-0', 'caller-1', 'caller-2']);
  });
});
