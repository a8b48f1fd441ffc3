/**
 * The in-memory ETag rows (shared/storage/etagRows.ts): the twin the rotation and health stores run
 * on in tests and local runs, so it must win and lose races exactly as Table storage does.
 */
import { createMemoryEtagRows } from '../../shared/storage/etagRows';
import type { EtagRows } from '../../shared/storage/etagRows';

let rows: EtagRows;

beforeEach(() => {
  rows = createMemoryEtagRows();
});

describe('createMemoryEtagRows', () => {
  it('reads nothing for a missing row', async () => {
    await expect(rows.read('p', 'r')).resolves.toBeUndefined();
    await expect(rows.query({ partitionKey: 'p' })).resolves.toEqual([]);
  });

  it('creates a row once: a second create answers undefined and leaves the first', async () => {
    const etag = await rows.create('p', 'r', { a: '1' });
    expect(etag).toEqual(expect.any(String));
    await expect(rows.create('p', 'r', { a: '2' })).resolves.toBeUndefined();
    await expect(rows.read('p', 'r')).resolves.toEqual({ columns: { a: '1' }, etag });
  });

  it('replaces with the current ETag and refuses a stale one', async () => {
    const first = await rows.create('p', 'r', { a: '1', b: 'gone' });
    const second = await rows.replace('p', 'r', { a: '2' }, first);
    expect(second).toEqual(expect.any(String));
    expect(second).not.toBe(first);
    await expect(rows.replace('p', 'r', { a: 'stale' }, first)).resolves.toBeUndefined();
    // Replace, not merge: the dropped column is gone.
    await expect(rows.read('p', 'r')).resolves.toEqual({ columns: { a: '2' }, etag: second });
  });

  it('refuses a conditional replace of a missing row, and upserts without an ETag', async () => {
    await expect(rows.replace('p', 'r', { a: '1' }, 'W/"1"')).resolves.toBeUndefined();
    await expect(rows.read('p', 'r')).resolves.toBeUndefined();
    const created = await rows.replace('p', 'r', { a: '1' });
    const overwritten = await rows.replace('p', 'r', { a: '2' });
    expect(overwritten).not.toBe(created);
    await expect(rows.read('p', 'r')).resolves.toEqual({ columns: { a: '2' }, etag: overwritten });
  });

  it('removes only with the current ETag', async () => {
    const first = await rows.create('p', 'r', { a: '1' });
    const second = await rows.replace('p', 'r', { a: '2' }, first);
    await expect(rows.remove('p', 'r', first ?? '')).resolves.toBe(false);
    await expect(rows.read('p', 'r')).resolves.toBeDefined();
    await expect(rows.remove('p', 'r', second ?? '')).resolves.toBe(true);
    await expect(rows.read('p', 'r')).resolves.toBeUndefined();
    await expect(rows.remove('p', 'r', second ?? '')).resolves.toBe(false);
  });

  it('never reuses an ETag, even after a row is deleted and created again', async () => {
    const first = await rows.create('p', 'r', {});
    await rows.remove('p', 'r', first ?? '');
    const again = await rows.create('p', 'r', {});
    expect(again).not.toBe(first);
    await expect(rows.replace('p', 'r', {}, first)).resolves.toBeUndefined();
  });

  it('queries a partition or a RowKey across partitions, with keys and ETags', async () => {
    const a1 = await rows.create('a', '1', { n: 1 });
    const a2 = await rows.create('a', '2', { n: 2 });
    const b1 = await rows.create('b', '1', { n: 3 });
    // A partition that is a prefix of another is not part of it.
    await rows.create('ab', '1', { n: 4 });
    const byPartition = await rows.query({ partitionKey: 'a' });
    expect(byPartition).toEqual([
      { partitionKey: 'a', rowKey: '1', columns: { n: 1 }, etag: a1 },
      { partitionKey: 'a', rowKey: '2', columns: { n: 2 }, etag: a2 },
    ]);
    const byRow = await rows.query({ rowKey: '1' });
    expect(byRow.map((row) => row.partitionKey).sort()).toEqual(['a', 'ab', 'b']);
    expect(byRow.find((row) => row.partitionKey === 'b')).toEqual({ partitionKey: 'b', rowKey: '1', columns: { n: 3 }, etag: b1 });
  });

  it('keeps its own copies of bytes and columns', async () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const columns = { data: bytes, label: 'x' };
    await rows.create('p', 'r', columns);
    bytes[0] = 9;
    columns.label = 'changed';
    const read = await rows.read('p', 'r');
    expect(read?.columns).toEqual({ data: new Uint8Array([1, 2, 3]), label: 'x' });
    (read?.columns.data as Uint8Array)[1] = 9;
    const [queried] = await rows.query({ partitionKey: 'p' });
    expect(queried?.columns.data).toEqual(new Uint8Array([1, 2, 3]));
  });
});
