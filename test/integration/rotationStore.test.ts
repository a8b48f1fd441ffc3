/**
 * The rotation store against a real Azurite (in memory, on free ports) through @azure/data-tables,
 * and its in-memory twin held to the same cases.
 */
import { startAzurite, type Azurite } from '../../local/emulators/azurite';
import { newRotationRecord } from '../../shared/rotation/rotationSteps';
import type { RotationRecord } from '../../shared/rotation/rotationTypes';
import {
  ACTIVE_ROW,
  createMemoryRotationStore,
  createTableRotationStore,
  ROTATION_TABLE,
  RotationConflictError,
  rotationPartition,
  type RotationStore,
} from '../../shared/rotation/tableRotationStore';
import { createTableClient } from '../../shared/storage/tableStorage';

let azurite: Azurite;

beforeAll(async () => {
  azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
});

afterAll(async () => {
  await azurite?.stop();
});

const T0 = new Date('2026-03-01T10:00:00.000Z');
let n = 0;

function record(secret: string, id = `rot-${++n}`): RotationRecord {
  return newRotationRecord({
    id,
    vault: 'default',
    secret,
    applicationObjectId: '0f0f0f0f-1111-4222-8333-444455556666',
    validityDays: 180,
    reason: 'manual',
    oldVersion: 'v1',
    oldExpiresOn: null,
    carriedTags: { brokerRotation: 'entraApp' },
    now: new Date(T0.getTime() + n * 1000),
  });
}

describe.each([
  ['in memory', (): RotationStore => createMemoryRotationStore()],
  ['in Table storage', (): RotationStore => createTableRotationStore(azurite.connectionString)],
])('the rotation store %s', (_label, create) => {
  let store: RotationStore;
  let secret: string;
  beforeEach(() => {
    store = create();
    secret = `erp-secret-${++n}`;
  });

  it('begins a rotation, answers it as active, saves it with ETags and releases it', async () => {
    const begun = await store.begin(record(secret));
    if (!begun.won) throw new Error('lost');
    expect(begun.record.etag).toEqual(expect.any(String));
    expect((await store.active('default', secret))?.id).toBe(begun.record.id);

    const saved = await store.save({ ...begun.record, state: 'passwordAdded', newKeyId: 'k-new' });
    expect(saved.etag).not.toBe(begun.record.etag);
    expect(await store.get('default', secret, saved.id)).toEqual(saved);
    // A save from the stale copy loses.
    await expect(store.save({ ...begun.record, state: 'stored' })).rejects.toBeInstanceOf(RotationConflictError);

    const retired = await store.save({ ...saved, state: 'retired' });
    expect(await store.active('default', secret)).toBeUndefined();
    await store.release(retired);
    await store.release(retired);
    expect(await store.list('default', secret)).toEqual([retired]);
  });

  it('lets exactly one of two racing starts win; the other gets the active rotation and leaves nothing behind', async () => {
    const [a, b] = await Promise.all([store.begin(record(secret)), store.begin(record(secret))]);
    const winners = [a, b].filter((x) => x.won);
    expect(winners).toHaveLength(1);
    const winner = winners[0]!.won ? winners[0]!.record : undefined;
    const loser = [a, b].find((x) => !x.won);
    expect(loser && !loser.won ? loser.active.id : undefined).toBe(winner?.id);
    expect((await store.list('default', secret)).map((r) => r.id)).toEqual([winner?.id]);
  });

  it('answers the active rotation to a later start, failed ones included', async () => {
    const first = await store.begin(record(secret));
    if (!first.won) throw new Error('lost');
    const failed = await store.save({ ...first.record, state: 'failed' });
    const second = await store.begin(record(secret));
    expect(second).toEqual({ won: false, active: failed });
  });

  it('takes over a marker left by a finished rotation', async () => {
    const first = await store.begin(record(secret));
    if (!first.won) throw new Error('lost');
    await store.save({ ...first.record, state: 'retired' });
    // No release: a crash came between the last save and the release.
    const second = await store.begin(record(secret));
    expect(second.won).toBe(true);
    expect((await store.active('default', secret))?.id).toBe(second.won ? second.record.id : '');
  });

  it('lists every active rotation across secrets, not the finished ones', async () => {
    const other = `${secret}-b`;
    const a = await store.begin(record(secret));
    const b = await store.begin(record(other));
    if (!a.won || !b.won) throw new Error('lost');
    await store.save({ ...b.record, state: 'retired' });
    const active = (await store.listActive()).filter((r) => r.secret === secret || r.secret === other);
    expect(active.map((r) => r.id)).toEqual([a.record.id]);
  });

  it('holds one active rotation per secret whatever the case of its name (Key Vault names are case-insensitive)', async () => {
    const lower = await store.begin(record(secret));
    if (!lower.won) throw new Error('lost');
    const upper = await store.begin(record(secret.toUpperCase()));
    expect(upper).toEqual({ won: false, active: lower.record });
    expect((await store.active('default', secret.toUpperCase()))?.id).toBe(lower.record.id);
    expect((await store.list('default', secret)).map((r) => r.id)).toEqual([lower.record.id]);
  });

  it('keeps secrets with awkward names apart', async () => {
    const odd = [`${secret}/x`, `${secret}#x`, `${secret}?x`];
    for (const s of odd) {
      const begun = await store.begin(record(s));
      expect(begun.won).toBe(true);
    }
    for (const s of odd) expect((await store.active('default', s))?.secret).toBe(s);
  });
});

describe('the rotation table', () => {
  it('holds one row per rotation and one marker per secret, keyed by the encoded vault and secret', async () => {
    const store = createTableRotationStore(azurite.connectionString);
    const begun = await store.begin(record('table-layout'));
    if (!begun.won) throw new Error('lost');
    const client = createTableClient(azurite.connectionString, ROTATION_TABLE);
    const rows: Array<Record<string, unknown>> = [];
    for await (const row of client.listEntities({
      queryOptions: { filter: `PartitionKey eq '${rotationPartition('default', 'table-layout')}'` },
    })) {
      rows.push(row);
    }
    expect(rows.map((r) => r.rowKey).sort()).toEqual([ACTIVE_ROW, begun.record.id].sort());
    const marker = rows.find((r) => r.rowKey === ACTIVE_ROW)!;
    expect(marker).toMatchObject({ vault: 'default', secret: 'table-layout', rotationId: begun.record.id });
    const row = rows.find((r) => r.rowKey === begun.record.id)!;
    expect(row).toMatchObject({ vault: 'default', secret: 'table-layout', state: 'started' });
    expect(JSON.parse(String(row.record))).not.toHaveProperty('etag');
    expect(rotationPartition('default', 'table-layout')).toBe(Buffer.from('default/table-layout').toString('base64url'));
    expect(rotationPartition('default', 'Table-Layout')).toBe(rotationPartition('default', 'table-layout'));
  });
});
