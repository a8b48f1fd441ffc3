/**
 * The per-instance adoption aggregate: one row per vault, secret and caller however often it is
 * read, `since` moving only with the version, flushes writing only what was read since the last,
 * and a failed flush written again with the next one. The store is an in-memory stand-in.
 */
import type { AdoptionStore } from '../../shared/adoption/adoptionTracker';
import { AdoptionTracker } from '../../shared/adoption/adoptionTracker';
import type { AdoptionRow } from '../../shared/adoption/adoptionTypes';

const V1 = '1'.repeat(32);
const V2 = '2'.repeat(32);
const T0 = Date.parse('2026-12-01T10:00:00.000Z');

/** Records every write; fails while `failing` is set. */
function memoryStore() {
  const writes: AdoptionRow[][] = [];
  const state = { failing: false };
  const store: AdoptionStore = {
    write: (rows) => {
      if (state.failing) return Promise.reject(new Error('503 ServerBusy'));
      writes.push([...rows]);
      return Promise.resolve();
    },
    read: (vault, secret) =>
      Promise.resolve(writes.flat().filter((r) => r.vault === vault && r.secret.toLowerCase() === secret.toLowerCase())),
    readAll: () => Promise.resolve(writes.flat()),
  };
  return { store, writes, state };
}

function setup() {
  let now = T0;
  const logs: string[] = [];
  const memory = memoryStore();
  let built = 0;
  const tracker = new AdoptionTracker({
    store: () => {
      built++;
      return memory.store;
    },
    log: (line) => logs.push(line),
    now: () => now,
    flushIntervalMs: 3_600_000,
  });
  return {
    tracker,
    ...memory,
    logs,
    built: () => built,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

afterEach(() => jest.useRealTimers());

describe('AdoptionTracker', () => {
  it('keeps one row per vault, secret and caller however many reads, with since and lastRead', async () => {
    const t = setup();
    for (let i = 0; i < 1000; i++) {
      t.tracker.record('default', 'erp-key', 'erp', V1);
      t.advance(10);
    }
    t.tracker.record('default', 'erp-key', 'crm', V1);
    t.tracker.record('partner', 'erp-key', 'erp', V1);
    expect(t.tracker.pending).toBe(3);
    expect(t.built()).toBe(0);
    await t.tracker.flush();
    expect(t.writes).toHaveLength(1);
    expect(t.writes[0]).toEqual([
      {
        vault: 'default',
        secret: 'erp-key',
        caller: 'erp',
        version: V1,
        since: '2026-12-01T10:00:00.000Z',
        lastRead: '2026-12-01T10:00:09.990Z',
      },
      {
        vault: 'default',
        secret: 'erp-key',
        caller: 'crm',
        version: V1,
        since: '2026-12-01T10:00:10.000Z',
        lastRead: '2026-12-01T10:00:10.000Z',
      },
      {
        vault: 'partner',
        secret: 'erp-key',
        caller: 'erp',
        version: V1,
        since: '2026-12-01T10:00:10.000Z',
        lastRead: '2026-12-01T10:00:10.000Z',
      },
    ]);
  });

  it('moves since when the caller reads another version, and only then', async () => {
    const t = setup();
    t.tracker.record('default', 'erp-key', 'erp', V1);
    t.advance(60_000);
    t.tracker.record('default', 'erp-key', 'erp', V2);
    t.advance(60_000);
    t.tracker.record('default', 'erp-key', 'erp', V2);
    await t.tracker.flush();
    expect(t.writes[0]).toEqual([
      {
        vault: 'default',
        secret: 'erp-key',
        caller: 'erp',
        version: V2,
        since: '2026-12-01T10:01:00.000Z',
        lastRead: '2026-12-01T10:02:00.000Z',
      },
    ]);
  });

  it('writes only what was read since the last flush, and nothing when nothing was', async () => {
    const t = setup();
    t.tracker.record('default', 'a', 'erp', V1);
    t.tracker.record('default', 'b', 'erp', V1);
    await t.tracker.flush();
    t.advance(1_000);
    t.tracker.record('default', 'b', 'erp', V1);
    await t.tracker.flush();
    await t.tracker.flush();
    expect(t.writes.map((w) => w.map((r) => `${r.secret}@${r.lastRead}`))).toEqual([
      ['a@2026-12-01T10:00:00.000Z', 'b@2026-12-01T10:00:00.000Z'],
      ['b@2026-12-01T10:00:01.000Z'],
    ]);
  });

  it('writes reads made while a flush runs right after it, once', async () => {
    const t = setup();
    t.tracker.record('default', 'a', 'erp', V1);
    const first = t.tracker.flush();
    t.tracker.record('default', 'b', 'erp', V1);
    await Promise.all([first, t.tracker.flush()]);
    expect(t.writes.map((w) => w.map((r) => r.secret))).toEqual([['a'], ['b']]);
  });

  it('ignores a read with no version', async () => {
    const t = setup();
    t.tracker.record('default', 'a', 'erp', null);
    expect(t.tracker.pending).toBe(0);
    await t.tracker.flush();
    expect(t.writes).toEqual([]);
  });

  it('keeps the rows of a failed flush for the next one, with reads made meanwhile', async () => {
    const t = setup();
    t.tracker.record('default', 'a', 'erp', V1);
    t.state.failing = true;
    await expect(t.tracker.flush()).rejects.toThrow('503 ServerBusy');
    t.advance(5_000);
    t.tracker.record('default', 'a', 'erp', V1);
    t.tracker.record('default', 'b', 'erp', V1);
    expect(t.tracker.pending).toBe(2);
    t.state.failing = false;
    await t.tracker.flush();
    expect(t.writes).toEqual([
      [
        expect.objectContaining({ secret: 'a', since: '2026-12-01T10:00:00.000Z', lastRead: '2026-12-01T10:00:05.000Z' }),
        expect.objectContaining({ secret: 'b' }),
      ],
    ]);
  });

  it('flushes on its timer, logs a failure without throwing, and stops when disposed', async () => {
    jest.useFakeTimers();
    const memory = memoryStore();
    const logs: string[] = [];
    const tracker = new AdoptionTracker({ store: () => memory.store, log: (l) => logs.push(l), flushIntervalMs: 30_000 });
    memory.state.failing = true;
    tracker.record('default', 'a', 'erp', V1);
    await jest.advanceTimersByTimeAsync(30_000);
    expect(logs).toEqual(['adoption: flush of what callers read failed, retried in 30 s: Error: 503 ServerBusy']);
    memory.state.failing = false;
    await jest.advanceTimersByTimeAsync(30_000);
    expect(memory.writes).toHaveLength(1);
    tracker.record('default', 'a', 'erp', V2);
    tracker.dispose();
    await jest.advanceTimersByTimeAsync(120_000);
    expect(memory.writes).toHaveLength(1);
    expect(tracker.pending).toBe(1);
  });

  it('reads after writing what it holds', async () => {
    const t = setup();
    t.tracker.record('default', 'Erp-Key', 'erp', V1);
    expect(await t.tracker.read('default', 'erp-key')).toEqual([expect.objectContaining({ caller: 'erp', version: V1 })]);
    expect(await t.tracker.readAll()).toHaveLength(1);
  });
});
