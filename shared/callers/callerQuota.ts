import { TooManyRequestsError } from '../errors';
import type { Caller } from './accessPolicy';

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Each caller's rate (`rateLimit.requestsPerMinute` in the access policy), as a token bucket per
 * caller on this instance: a full minute's worth may come at once, then requests refill at the
 * rate. A batch costs one token per item and is refused whole when it asks for more than the
 * bucket holds, so no request is ever served beyond the bucket; a batch larger than the caller's
 * whole rate can never pass and must be split. Instances do not share buckets: a fleet of N
 * instances lets a caller through up to N times its rate (README "Quotas").
 */
export class CallerQuota {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Takes `cost` requests (a batch: its item count) from the caller's bucket, all or none.
   * @throws TooManyRequestsError when the bucket holds fewer, with the seconds until it will; a cost
   * above the caller's whole rate never fits, and is refused with the rate's minute (split it).
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
    const need = Math.max(cost, 1);
    if (bucket.tokens < need) {
      const retryAfter = need > capacity ? 60 : Math.max(1, Math.ceil((need - bucket.tokens) / perMs / 1000));
      throw new TooManyRequestsError(
        need > capacity
          ? `Caller "${caller.name}" asked for ${need} secrets at once, more than its rate of ${capacity} requests per minute on this instance; split the batch`
          : `Caller "${caller.name}" is over its rate of ${capacity} requests per minute on this instance; retry after ${retryAfter} s`,
        retryAfter,
      );
    }
    bucket.tokens -= need;
  }
}
