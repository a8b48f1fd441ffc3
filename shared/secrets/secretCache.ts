/**
 * Each stored value's TTL is shortened by a random share of up to this much (10 %), so the entries
 * a fleet filled together do not all expire, and reload, together. Never lengthened: a value is
 * never kept past one TTL (a disabled version must be gone within `CACHE_TTL_SECONDS`).
 */
export const TTL_JITTER = 0.1;

/** How a value came out of the cache. */
export type CacheOutcome = 'hit' | 'miss' | 'coalesced' | 'stale';

/** How long one value stays fresh, and how long past that it may bridge a failed reload. */
export interface Freshness {
  readonly ttlMs: number;
  readonly staleIfErrorMs: number;
  /**
   * The value is fresh until this time at the latest (ms since the epoch), whatever `ttlMs` says:
   * a copy taken from the fleet's shared cache expires when that copy does.
   */
  readonly notAfter?: number | undefined;
}

export interface CacheOptions<V> {
  /** How long a value is fresh. 0 turns caching off (coalescing stays). */
  readonly ttlMs: number;
  /** Entries kept before the least recently used is evicted. */
  readonly maxEntries: number;
  /** How long past freshness a value may still be served when loading it fails. */
  readonly staleIfErrorMs: number;
  /** Which load failures may be answered with a stale value (throttling, outages: not a 404). */
  readonly serveStaleOn: (err: unknown) => boolean;
  /** A shorter life for some values (a cached "not found", say); the default is `ttlMs` / `staleIfErrorMs`. */
  readonly freshnessOf?: (value: V) => Freshness | undefined;
  /** Share of a TTL by which each stored value's TTL is shortened at random. Default {@link TTL_JITTER}. */
  readonly ttlJitter?: number;
  /** A number in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  readonly now?: () => number;
}

/** What a load is told about the key it loads. */
export interface LoadContext {
  /**
   * A stale value may answer if this load fails with an error `serveStaleOn` accepts: the load
   * should then fail fast rather than wait for the vault.
   */
  readonly canBridge: boolean;
}

/** Decides whether a cached value (or a running load's result) is dropped. */
export type InvalidationMatch<V> = (key: string, value: V) => boolean;

interface Load<V> {
  readonly promise: Promise<V>;
  /** Invalidations that arrived while the load ran: its result is stored only if none matches it. */
  readonly invalidations: InvalidationMatch<V>[];
}

/** A stored value; {@link SecretCache.peek} hands it out. */
export interface CacheEntry<V> {
  readonly value: V;
  /** Past this the value is refreshed. */
  readonly freshUntil: number;
  /** Past this the value is dropped even when the vault fails. */
  readonly staleUntil: number;
  /**
   * What the cache's user derived from this value (a prebuilt answer): it lives and dies with the
   * entry, so nothing made of the value outlives it. A new value is a new entry, with none.
   */
  memo: unknown;
}

type Entry<V> = CacheEntry<V>;

/**
 * An in-memory LRU cache with TTL, single-flight loading and stale-if-error.
 *
 * - One load per key at a time: every request that arrives while a load runs waits for it.
 * - A value past its TTL is reloaded; if that load fails with an error `serveStaleOn` accepts,
 *   the old value is served until `staleIfErrorMs` past its TTL.
 * - Every value has a TTL, pinned versions too: their value cannot change, but whether the vault
 *   still serves them (disabled, deleted) can, and a revocation must take effect. Each TTL is
 *   shortened at random by up to `ttlJitter` of it, never lengthened.
 * Values live in this process's memory only.
 */
export class SecretCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly inflight = new Map<string, Load<V>>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly ttlJitter: number;

  constructor(private readonly options: CacheOptions<V>) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.ttlJitter = options.ttlJitter ?? TTL_JITTER;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached value for `key`, or the result of `load` (shared by all concurrent callers, waits
   * included). `load` is told whether a stale value could answer for it.
   * @throws whatever `load` throws, unless a stale value may be served instead.
   */
  async get(
    key: string,
    load: (context: LoadContext) => Promise<V>,
    options: { serveStaleOn?: (err: unknown) => boolean } = {},
  ): Promise<{ value: V; outcome: CacheOutcome }> {
    const now = this.now();
    const entry = this.entries.get(key);
    if (entry && now < entry.freshUntil) {
      // Most recently used, as in touch().
      this.entries.delete(key);
      this.entries.set(key, entry);
      return { value: entry.value, outcome: 'hit' };
    }
    const running = this.inflight.get(key);
    if (running) {
      return this.settle(key, running.promise, 'coalesced', options.serveStaleOn);
    }
    const invalidations: InvalidationMatch<V>[] = [];
    const promise = load({ canBridge: entry !== undefined && now < entry.staleUntil }).then((value) => {
      if (!invalidations.some((match) => match(key, value))) this.store(key, value);
      return value;
    });
    this.inflight.set(key, { promise, invalidations });
    const clear = (): void => {
      if (this.inflight.get(key)?.promise === promise) this.inflight.delete(key);
    };
    promise.then(clear, clear);
    return this.settle(key, promise, 'miss', options.serveStaleOn);
  }

  /**
   * The entry for `key` when its value is fresh now, synchronously, without marking it used (see
   * {@link touch}); undefined otherwise (then {@link get} loads, coalesces or serves stale).
   */
  peek(key: string): CacheEntry<V> | undefined {
    const entry = this.entries.get(key);
    return entry !== undefined && this.now() < entry.freshUntil ? entry : undefined;
  }

  /** Marks a {@link peek}ed entry used, as a hit by {@link get} does; a no-op once it was replaced or dropped. */
  touch(key: string, entry: CacheEntry<V>): void {
    if (this.entries.get(key) !== entry) return;
    // Map keeps insertion order: re-inserting makes this the most recently used.
    this.entries.delete(key);
    this.entries.set(key, entry);
  }

  /**
   * Drops every entry that `match` accepts. A load running now stores its result only if `match`
   * does not accept that result either (a load that began before a rotation may bring the old value).
   * @returns how many entries were dropped.
   */
  invalidate(match: InvalidationMatch<V>): number {
    let dropped = 0;
    for (const [key, entry] of [...this.entries]) {
      if (match(key, entry.value)) {
        this.entries.delete(key);
        dropped++;
      }
    }
    for (const load of this.inflight.values()) load.invalidations.push(match);
    return dropped;
  }

  private async settle(
    key: string,
    promise: Promise<V>,
    outcome: 'miss' | 'coalesced',
    serveStaleOn: (err: unknown) => boolean = this.options.serveStaleOn,
  ): Promise<{ value: V; outcome: CacheOutcome }> {
    try {
      return { value: await promise, outcome };
    } catch (err: unknown) {
      const entry = this.entries.get(key);
      if (entry && this.now() < entry.staleUntil && serveStaleOn(err)) {
        return { value: entry.value, outcome: 'stale' };
      }
      throw err;
    }
  }

  private store(key: string, value: V): void {
    const freshness: Freshness = this.options.freshnessOf?.(value) ?? this.options;
    const { ttlMs, staleIfErrorMs } = freshness;
    if (ttlMs <= 0 && staleIfErrorMs <= 0) return;
    // |2r - 1| is uniform in [0, 1) too, and 0 at r = 0.5 (what tests use to turn jitter off).
    const jittered = this.now() + ttlMs * (1 - this.ttlJitter * Math.abs(2 * this.random() - 1));
    const freshUntil = freshness.notAfter === undefined ? jittered : Math.min(jittered, freshness.notAfter);
    this.entries.delete(key);
    this.entries.set(key, { value, freshUntil, staleUntil: freshUntil + staleIfErrorMs, memo: undefined });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }
}
