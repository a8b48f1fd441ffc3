import { SecretCache, TTL_JITTER } from '../../shared/secrets/secretCache';
import type { CacheOptions } from '../../shared/secrets/secretCache';

class Outage extends Error {}
class NotFound extends Error {}

function setup(overrides: Partial<CacheOptions<string>> = {}) {
  let now = 1_000_000;
  const cache = new SecretCache<string>({
    ttlMs: 60_000,
    maxEntries: 3,
    staleIfErrorMs: 600_000,
    serveStaleOn: (err) => err instanceof Outage,
    now: () => now,
    // TTL jitter off (a factor of exactly 1) unless a test turns it on.
    random: () => 0.5,
    ...overrides,
  });
  return { cache, advance: (ms: number) => (now += ms) };
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SecretCache', () => {
  it('serves a fresh value from memory and reloads it after the TTL', async () => {
    const { cache, advance } = setup();
    const load = jest.fn().mockResolvedValueOnce('v1').mockResolvedValueOnce('v2');
    expect(await cache.get('k', load)).toEqual({ value: 'v1', outcome: 'miss' });
    advance(59_999);
    expect(await cache.get('k', load)).toEqual({ value: 'v1', outcome: 'hit' });
    advance(1);
    expect(await cache.get('k', load)).toEqual({ value: 'v2', outcome: 'miss' });
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('runs one load for any number of concurrent requests for a key', async () => {
    const { cache } = setup();
    const pending = deferred<string>();
    const load = jest.fn(() => pending.promise);
    const all = Promise.all(Array.from({ length: 500 }, () => cache.get('k', load)));
    pending.resolve('v');
    const results = await all;
    expect(load).toHaveBeenCalledTimes(1);
    expect(results.filter((r) => r.outcome === 'miss')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'coalesced')).toHaveLength(499);
    expect(new Set(results.map((r) => r.value))).toEqual(new Set(['v']));
  });

  it('shares a failure with every waiter and does not cache it', async () => {
    const { cache } = setup();
    const pending = deferred<string>();
    const first = cache.get('k', () => pending.promise);
    const second = cache.get('k', () => Promise.resolve('never'));
    pending.reject(new NotFound('x'));
    await expect(first).rejects.toBeInstanceOf(NotFound);
    await expect(second).rejects.toBeInstanceOf(NotFound);
    expect(await cache.get('k', () => Promise.resolve('later'))).toEqual({ value: 'later', outcome: 'miss' });
  });

  it('serves the stale value when the vault throws an outage, until the stale limit', async () => {
    const { cache, advance } = setup();
    await cache.get('k', () => Promise.resolve('v1'));
    advance(60_000 + 599_999);
    expect(await cache.get('k', () => Promise.reject(new Outage()))).toEqual({ value: 'v1', outcome: 'stale' });
    advance(1);
    await expect(cache.get('k', () => Promise.reject(new Outage()))).rejects.toBeInstanceOf(Outage);
  });

  it('does not bridge a definite answer such as not found with a stale value', async () => {
    const { cache, advance } = setup();
    await cache.get('k', () => Promise.resolve('v1'));
    advance(61_000);
    await expect(cache.get('k', () => Promise.reject(new NotFound()))).rejects.toBeInstanceOf(NotFound);
  });

  it('asks again for a pinned value past the TTL, so a version disabled since then is refused', async () => {
    const { cache, advance } = setup();
    await cache.get('k@v1', () => Promise.resolve('pinned'));
    advance(61_000);
    await expect(cache.get('k@v1', () => Promise.reject(new NotFound()))).rejects.toBeInstanceOf(NotFound);
  });

  it('gives a value the shorter life its freshness says (a cached miss), without bridging', async () => {
    const { cache, advance } = setup({
      freshnessOf: (value: string) => (value === 'missing' ? { ttlMs: 5_000, staleIfErrorMs: 0 } : undefined),
    });
    await cache.get('gone', () => Promise.resolve('missing'));
    await cache.get('here', () => Promise.resolve('value'));
    advance(4_000);
    expect((await cache.get('gone', () => Promise.resolve('x'))).outcome).toBe('hit');
    advance(2_000);
    expect((await cache.get('here', () => Promise.resolve('x'))).outcome).toBe('hit');
    await expect(cache.get('gone', () => Promise.reject(new Outage()))).rejects.toBeInstanceOf(Outage);
  });

  it('evicts the least recently used entry past max entries', async () => {
    const { cache } = setup();
    for (const k of ['a', 'b', 'c']) await cache.get(k, () => Promise.resolve(k));
    await cache.get('a', () => Promise.resolve('reloaded')); // a is now most recent
    await cache.get('d', () => Promise.resolve('d'));
    expect(cache.size).toBe(3);
    expect((await cache.get('a', () => Promise.resolve('x'))).outcome).toBe('hit');
    expect(await cache.get('b', () => Promise.resolve('b2'))).toEqual({ value: 'b2', outcome: 'miss' });
  });

  it('invalidates matching keys, and a load already running does not put the old value back', async () => {
    const { cache } = setup();
    await cache.get('vault/a@latest', () => Promise.resolve('old'));
    const pending = deferred<string>();
    const running = cache.get('vault/b@latest', () => pending.promise);
    expect(cache.invalidate((k) => k.startsWith('vault/'))).toBe(1);
    pending.resolve('loaded-before-rotation');
    expect((await running).value).toBe('loaded-before-rotation');
    expect(await cache.get('vault/b@latest', () => Promise.resolve('new'))).toEqual({ value: 'new', outcome: 'miss' });
    expect(await cache.get('vault/a@latest', () => Promise.resolve('new-a'))).toEqual({ value: 'new-a', outcome: 'miss' });
  });

  it('with a TTL of 0 still coalesces but keeps nothing', async () => {
    const { cache } = setup({ ttlMs: 0, staleIfErrorMs: 0 });
    await cache.get('k', () => Promise.resolve('v'));
    expect(cache.size).toBe(0);
  });

  it('shortens each TTL by at most TTL_JITTER, never lengthens it, and not every TTL by the same', async () => {
    const { cache, advance } = setup({ maxEntries: 1000, random: Math.random });
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
    for (const k of keys) await cache.get(k, () => Promise.resolve('v'));
    const outcomes = async (): Promise<Map<string, string>> => {
      const seen = new Map<string, string>();
      for (const k of keys) seen.set(k, (await cache.get(k, () => Promise.resolve('reloaded'))).outcome);
      return seen;
    };
    advance(60_000 * (1 - TTL_JITTER) - 1);
    expect(new Set((await outcomes()).values())).toEqual(new Set(['hit']));
    advance(60_000 * TTL_JITTER * 0.5);
    const midway = await outcomes();
    const stillFresh = keys.filter((k) => midway.get(k) === 'hit');
    expect(stillFresh.length).toBeGreaterThan(0);
    expect(stillFresh.length).toBeLessThan(keys.length);
    advance(60_000 * TTL_JITTER * 0.5 + 1); // exactly one TTL after they were stored
    for (const k of stillFresh) expect((await cache.get(k, () => Promise.resolve('reloaded'))).outcome).toBe('miss');
  });

  it('keeps a value no later than its notAfter, whatever its TTL says', async () => {
    // The clock starts at 1_000_000: the value is fresh for 5 s although its TTL is 60 s.
    const notAfter = 1_000_000 + 5_000;
    const { cache, advance } = setup({
      freshnessOf: () => ({ ttlMs: 60_000, staleIfErrorMs: 600_000, notAfter }),
    });
    await cache.get('k', () => Promise.resolve('from-shared'));
    advance(4_999);
    expect((await cache.get('k', () => Promise.resolve('reloaded'))).outcome).toBe('hit');
    advance(1);
    expect(await cache.get('k', () => Promise.resolve('reloaded'))).toEqual({ value: 'reloaded', outcome: 'miss' });
  });

  it('tells the load whether a stale value could answer for it', async () => {
    const { cache, advance } = setup();
    const contexts: boolean[] = [];
    const load = (context: { canBridge: boolean }) => {
      contexts.push(context.canBridge);
      return Promise.resolve('v');
    };
    await cache.get('k', load);
    advance(60_000);
    await cache.get('k', load);
    advance(60_000 + 600_000);
    await cache.get('k', load);
    expect(contexts).toEqual([false, true, false]);
  });

  it('lets a running load store its result when the invalidation does not apply to that result', async () => {
    const { cache } = setup();
    const first = deferred<string>();
    const second = deferred<string>();
    const a = cache.get('a', () => first.promise);
    const b = cache.get('b', () => second.promise);
    cache.invalidate((_key, value) => value !== 'v2');
    first.resolve('v2');
    second.resolve('v1');
    await Promise.all([a, b]);
    expect((await cache.get('a', () => Promise.resolve('x'))).outcome).toBe('hit');
    expect((await cache.get('b', () => Promise.resolve('x'))).outcome).toBe('miss');
  });
});
