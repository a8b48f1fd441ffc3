import { TooManyRequestsError } from '../errors';
import type { Caller } from './accessPolicy';

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Each caller's rate (`rateLimit.requestsPerMinute` in the access policy), as a token bucket per
 * caller on this instance: a full minute's worth may come at once, then requests refill at the
 * rate. A batch costs its item count; a batch larger than the whole bucket costs the whole bucket,
 * so it can still pass once the caller has been idle. Instances do not share buckets: a fleet of
 * N instances lets a caller through up to N times its rate (README "Quotas").
 */
export class CallerQuota {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Takes `cost` requests from the caller's bucket.
   * @throws TooManyRequestsError when the bucket holds fewer, with the seconds until it will.
   */
  take(caller: Caller, cost = 1): void {
    const capacity = caller.requestsPerMinute;
    const perMs = capacity / 60_000;
    const now = this.now();
    let bucket = this.buckets.get(caller.name);
    if (!bucket) {
      bucket = { tokens: capacity, at: now };
      this.buckets.set(caller.name, bucket);
    }
    bucket.tokens = Math.min(capacity, bucket.tokens + (now - bucket.at) * perMs);
    bucket.at = now;
    const need = Math.min(Math.max(cost, 1), capacity);
    if (bucket.tokens < need) {
      const retryAfter = Math.max(1, Math.ceil((need - bucket.tokens) / perMs / 1000));
      throw new TooManyRequestsError(
        `Caller "${caller.name}" is over its rate of ${capacity} requests per minute on this instance; retry after ${retryAfter} s`,
        retryAfter,
      );
    }
    bucket.tokens -= need;
  }
}
