import { SecretCache } from '../../shared/secrets/secretCache';

describe('SecretCache.peek and touch', () => {
  it('hands out a fresh entry only, with a memo that a new value does not inherit, and touch keeps it from eviction', async () => {
    let now = 0;
    const cache = new SecretCache<string>({
      ttlMs: 1_000,
      maxEntries: 2,
      staleIfErrorMs: 0,
      serveStaleOn: () => false,
      now: () => now,
      random: () => 0.5,
    });
    expect(cache.peek('a')).toBeUndefined();
    await cache.get('a', () => Promise.resolve('A1'));
    await cache.get('b', () => Promise.resolve('B'));
    const entry = cache.peek('a');
    expect(entry?.value).toBe('A1');
    entry!.memo = 'derived from A1';
    expect(cache.peek('a')?.memo).toBe('derived from A1');
    // Touched: "b" is now the least recently used, and the one a third key evicts.
    cache.touch('a', entry!);
    await cache.get('c', () => Promise.resolve('C'));
    expect(cache.peek('b')).toBeUndefined();
    expect(cache.peek('a')?.memo).toBe('derived from A1');
    now = 1_000;
    expect(cache.peek('a')).toBeUndefined();
    await cache.get('a', () => Promise.resolve('A2'));
    expect(cache.peek('a')).toMatchObject({ value: 'A2', memo: undefined });
  });
});
