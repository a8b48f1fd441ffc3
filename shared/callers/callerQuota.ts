import { TooManyRequestsError } from '../errors';
import type { Caller } from './accessPolicy';

interface Bucket {
  tokens: number;
  at: number;
}

/** What a caller's vault misses are charged to (the resolver needs no more of {@link CallerQuota}). */
export interface MissBudget {
  /** @throws TooManyRequestsError when the caller is past its misses per minute. */
  takeMiss(caller: Caller): void;
}

/**
 * Each caller's rate (`rateLimit.requestsPerMinute` in the access policy), as a token bucket per
 * caller on this instance: a full minute's worth may come at once, then requests refill at the
 * rate. A batch costs one token per item and is refused whole when it asks for more than the
 * bucket holds, so no request is ever served beyond the bucket; a batch larger than the caller's
 * whole rate can never pass and must be split. Instances do not share buckets: a fleet of N
 * instances lets a caller through up to N times its rate (docs/security.md, "Quotas").
 *
 * Apart from that, each caller's vault misses (`rateLimit.missesPerMinute`; the access policy fills in
 * its default, `DEFAULT_CALLER_MISSES_PER_MINUTE`): a bucket of its own, spent one token per cold miss (a
 * read of a key the cache holds nothing for: {@link takeMiss}, called by the resolver just before
 * such a read), never by a cache hit nor by the refresh of a value the cache still holds.
 */
export class CallerQuota implements MissBudget {
  private readonly buckets = new Map<string, Bucket>();
  private readonly missBuckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Takes `cost` requests (a batch: its item count) from the caller's bucket, all or none.
   * @throws TooManyRequestsError when the bucket holds fewer, with the seconds until it will; a cost
   * above the caller's whole rate never fits, and is refused with the rate's minute (split it).
   */
  take(caller: Caller, cost = 1): void {
    const capacity = caller.requestsPerMinute;
    const need = Math.max(cost, 1);
    const retryAfter = this.spend(this.buckets, caller.name, capacity, need);
    if (retryAfter === 0) return;
    throw new TooManyRequestsError(
      need > capacity
        ? `Caller "${caller.name}" asked for ${need} secrets at once, more than its rate of ${capacity} requests per minute on this instance; split the batch`
        : `Caller "${caller.name}" is over its rate of ${capacity} requests per minute on this instance; retry after ${retryAfter} s`,
      retryAfter,
    );
  }

  /**
   * Takes one request from the caller's bucket when it holds one: {@link take} without the error,
   * for a path that hands a refused request on to the one that answers it 429 (which takes again:
   * a refusal takes nothing).
   */
  tryTake(caller: Caller): boolean {
    return this.spend(this.buckets, caller.name, caller.requestsPerMinute, 1) === 0;
  }

  /**
   * Takes one vault miss (a read the cache could not answer) from the caller's miss budget.
   * @throws TooManyRequestsError when none is left, with the seconds until one is.
   */
  takeMiss(caller: Caller): void {
    const capacity = caller.missesPerMinute;
    const retryAfter = this.spend(this.missBuckets, caller.name, capacity, 1);
    if (retryAfter === 0) return;
    throw new TooManyRequestsError(
      `Caller "${caller.name}" is over its budget of ${capacity} vault reads per minute on this instance (reads the cache could not answer); retry after ${retryAfter} s`,
      retryAfter,
    );
  }

  /**
   * Refills the caller's bucket in `buckets` and takes `need` tokens, all or none.
   * @returns 0 when taken; else the seconds until they will be there (60 when they never fit).
   */
  private spend(buckets: Map<string, Bucket>, name: string, capacity: number, need: number): number {
    const perMs = capacity / 60_000;
    const now = this.now();
    let bucket = buckets.get(name);
    if (!bucket) {
      bucket = { tokens: capacity, at: now };
      buckets.set(name, bucket);
    }
    bucket.tokens = Math.min(capacity, bucket.tokens + (now - bucket.at) * perMs);
    bucket.at = now;
    if (bucket.tokens < need) return need > capacity ? 60 : Math.max(1, Math.ceil((need - bucket.tokens) / perMs / 1000));
    bucket.tokens -= need;
    return 0;
  }
}
