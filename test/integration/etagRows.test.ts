/**
 * The Table storage ETag rows (shared/storage/etagRows.ts) against a real Azurite (in memory, on
 * free ports) through the real @azure/data-tables client; each test runs in a table of its own.
 * The same race script is played on the in-memory twin, which must answer alike.
 */
import { startAzurite } from '../../local/emulators/azurite';
import type { Azurite } from '../../local/emulators/azurite';
import { createMemoryEtagRows, createTableEtagRows } from '../../shared/storage/etagRows';
import type { EtagRows } from '../../shared/storage/etagRows';
import { createTableClient, describeStorageError } from '../../shared/storage/tableStorage';

let azurite: Azurite;
let tables = 0;

beforeAll(async () => {
  azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
});

afterAll(async () => {
  await azurite?.stop();
});

/** A fresh table name (3 to 63 letters and digits). */
function tableName(): string {
  return `etagrows${Date.now().toString(36)}${++tables}`;
}

/** Whether the table exists, asked of the service: a missing row of a missing table is `TableNotFound`. */
async function tableExists(name: string): Promise<boolean> {
  const client = createTableClient(azurite.connectionString, name);
  try {
    await client.getEntity('no-such', 'row');
    return true;
  } catch (err: unknown) {
    const said = describeStorageError(err);
    if (said === '404 TableNotFound') return false;
    if (said === '404 ResourceNotFound') return true;
    throw err;
  }
}

/** Creates, loses and wins races; answers what every step answered, ETags as "etag" or undefined. */
async function raceScript(rows: EtagRows): Promise<unknown[]> {
  const seen: unknown[] = [];
  const note = (value: unknown): unknown => (typeof value === 'string' ? 'etag' : value);
  const first = await rows.create('p', 'r', { a: '1', b: 'dropped' });
  seen.push(note(first), note(await rows.create('p', 'r', { a: 'again' })));
  const second = await rows.replace('p', 'r', { a: '2' }, first);
  seen.push(note(second), note(await rows.replace('p', 'r', { a: 'stale' }, first)));
  seen.push((await rows.read('p', 'r'))?.columns);
  seen.push(await rows.remove('p', 'r', first ?? ''), await rows.remove('p', 'r', second ?? ''), await rows.remove('p', 'r', second ?? ''));
  seen.push(note(await rows.replace('p', 'r', { a: 'gone' }, second)), await rows.read('p', 'r'));
  seen.push(note(await rows.replace('p', 'r', { a: 'upsert' })), (await rows.read('p', 'r'))?.columns);
  return seen;
}

const EXPECTED_RACE = ['etag', undefined, 'etag', undefined, { a: '2' }, false, true, false, undefined, undefined, 'etag', { a: 'upsert' }];

describe('createTableEtagRows', () => {
  it('reads a missing table as empty without creating it', async () => {
    const name = tableName();
    const rows = createTableEtagRows(azurite.connectionString, name);
    await expect(rows.read('p', 'r')).resolves.toBeUndefined();
    await expect(rows.query({ partitionKey: 'p' })).resolves.toEqual([]);
    await expect(rows.query({ rowKey: 'r' })).resolves.toEqual([]);
    expect(await tableExists(name)).toBe(false);
    // A conditional delete is a write: it creates the table and finds nothing to delete.
    await expect(rows.remove('p', 'r', 'W/"datetime\'2025-01-01T00%3A00%3A00Z\'"')).resolves.toBe(false);
    expect(await tableExists(name)).toBe(true);
  });

  it('wins and loses races as the in-memory twin does', async () => {
    const table = await raceScript(createTableEtagRows(azurite.connectionString, tableName()));
    expect(table).toEqual(EXPECTED_RACE);
    await expect(raceScript(createMemoryEtagRows())).resolves.toEqual(table);
  });

  it('answers the ETag the service holds, so a write with it succeeds', async () => {
    const rows = createTableEtagRows(azurite.connectionString, tableName());
    const created = await rows.create('p', 'r', { a: '1' });
    const read = await rows.read('p', 'r');
    expect(read?.etag).toBe(created);
    const [queried] = await rows.query({ partitionKey: 'p' });
    expect(queried?.etag).toBe(created);
    await expect(rows.replace('p', 'r', { a: '2' }, queried?.etag)).resolves.toEqual(expect.any(String));
  });

  it('round-trips strings, numbers and bytes, without the service columns', async () => {
    const rows = createTableEtagRows(azurite.connectionString, tableName());
    const backing = new Uint8Array([0, 0, 1, 2, 255, 0, 0]);
    // A view into a larger buffer: only its own bytes are stored.
    const bytes = backing.subarray(2, 5);
    await rows.create('p', 'r', { text: 'café ✓', count: 42, data: bytes });
    const read = await rows.read('p', 'r');
    expect(read?.columns).toEqual({ text: 'café ✓', count: 42, data: new Uint8Array([1, 2, 255]) });
    expect(read?.columns.data).toBeInstanceOf(Uint8Array);
  });

  it('reads only the selected columns when asked', async () => {
    const rows = createTableEtagRows(azurite.connectionString, tableName());
    await rows.create('p', 'r', { small: 's', big: new Uint8Array(1024) });
    await expect(rows.read('p', 'r', ['small'])).resolves.toEqual({ columns: { small: 's' }, etag: expect.any(String) });
  });

  it('queries a partition, or one RowKey across partitions', async () => {
    const rows = createTableEtagRows(azurite.connectionString, tableName());
    await rows.create('a', '1', { n: 'a1' });
    await rows.create('a', '2', { n: 'a2' });
    await rows.create('b', '1', { n: 'b1' });
    await rows.create('ab', '2', { n: 'ab2' });
    const byPartition = await rows.query({ partitionKey: 'a' });
    expect(byPartition.map((row) => [row.partitionKey, row.rowKey, row.columns.n])).toEqual([
      ['a', '1', 'a1'],
      ['a', '2', 'a2'],
    ]);
    const byRow = await rows.query({ rowKey: '1' });
    expect(byRow.map((row) => row.columns.n)).toEqual(['a1', 'b1']);
  });

  it('lets exactly one of two racing instances create a row', async () => {
    const name = tableName();
    const [one, two] = [createTableEtagRows(azurite.connectionString, name), createTableEtagRows(azurite.connectionString, name)];
    const outcomes = await Promise.all([one.create('p', 'r', { who: 'one' }), two.create('p', 'r', { who: 'two' })]);
    expect(outcomes.filter((etag) => etag !== undefined)).toHaveLength(1);
    const winner = outcomes[0] !== undefined ? 'one' : 'two';
    await expect(one.read('p', 'r')).resolves.toEqual({ columns: { who: winner }, etag: outcomes.find((e) => e !== undefined) });
  });
});
