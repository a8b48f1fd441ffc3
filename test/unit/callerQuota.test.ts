import type { Caller } from '../../shared/callers/accessPolicy';
import { CallerQuota } from '../../shared/callers/callerQuota';
import { DEFAULT_CALLER_MISSES_PER_MINUTE } from '../../shared/config';
import { TooManyRequestsError } from '../../shared/errors';

const caller = (name: string, requestsPerMinute: number): Caller => ({
  name,
  operator: false,
  method: 'apiKey',
  requestsPerMinute,
  missesPerMinute: DEFAULT_CALLER_MISSES_PER_MINUTE,
});

function setup() {
  let now = 0;
  return { quota: new CallerQuota(() => now), advance: (ms: number) => (now += ms) };
}

function refusal(run: () => void): TooManyRequestsError {
  try {
    run();
  } catch (err: unknown) {
    if (err instanceof TooManyRequestsError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('CallerQuota', () => {
  it('lets a minute of requests through at once, then refuses with the seconds until the next', () => {
    const { quota } = setup();
    const erp = caller('erp', 60);
    for (let i = 0; i < 60; i++) quota.take(erp);
    const err = refusal(() => quota.take(erp));
    expect(err).toMatchObject({ status: 429, code: 'TooManyRequests', retryAfterSeconds: 1 });
    expect(err.message).toBe('Caller "erp" is over its rate of 60 requests per minute on this instance; retry after 1 s');
  });

  it('refills at the rate', () => {
    const { quota, advance } = setup();
    const erp = caller('erp', 60);
    for (let i = 0; i < 60; i++) quota.take(erp);
    advance(1_000);
    expect(() => quota.take(erp)).not.toThrow();
    expect(() => quota.take(erp)).toThrow(TooManyRequestsError);
  });

  it('keeps one bucket per caller: one caller past its rate leaves another alone', () => {
    const { quota } = setup();
    const noisy = caller('noisy', 2);
    quota.take(noisy);
    quota.take(noisy);
    expect(() => quota.take(noisy)).toThrow(TooManyRequestsError);
    expect(() => quota.take(caller('quiet', 2))).not.toThrow();
  });

  it('charges a batch its item count, and refuses a batch larger than what is left whole, taking nothing', () => {
    const { quota, advance } = setup();
    const erp = caller('erp', 60);
    quota.take(erp, 50);
    const err = refusal(() => quota.take(erp, 20));
    expect(err).toMatchObject({ status: 429, code: 'TooManyRequests', retryAfterSeconds: 10 });
    quota.take(erp, 10);
    expect(() => quota.take(erp, 1)).toThrow(TooManyRequestsError);
    advance(60_000);
    quota.take(erp, 60);
    expect(() => quota.take(erp, 1)).toThrow(TooManyRequestsError);
  });

  it('never serves a batch beyond the bucket: 100 items for a caller limited to 10 a minute are refused, even after a long idle', () => {
    const { quota, advance } = setup();
    const erp = caller('erp', 10);
    advance(3_600_000);
    const err = refusal(() => quota.take(erp, 100));
    expect(err).toMatchObject({ status: 429, code: 'TooManyRequests', retryAfterSeconds: 60 });
    expect(err.message).toBe(
      'Caller "erp" asked for 100 secrets at once, more than its rate of 10 requests per minute on this instance; split the batch',
    );
    // The refused batch took nothing: the whole minute is still there, and no more.
    quota.take(erp, 10);
    expect(refusal(() => quota.take(erp, 1)).retryAfterSeconds).toBe(6);
    // Six seconds later one more item is in the bucket: a batch of two still waits, one passes.
    advance(6_000);
    expect(refusal(() => quota.take(erp, 2)).retryAfterSeconds).toBe(6);
    quota.take(erp, 1);
  });

  describe('the miss budget (takeMiss)', () => {
    it('holds 100 misses by default, a whole batch after a cold start, then refills at the budget', () => {
      const { quota, advance } = setup();
      const erp = caller('erp', 600);
      expect(DEFAULT_CALLER_MISSES_PER_MINUTE).toBe(100);
      for (let i = 0; i < 100; i++) quota.takeMiss(erp);
      const err = refusal(() => quota.takeMiss(erp));
      expect(err).toMatchObject({ status: 429, code: 'TooManyRequests', retryAfterSeconds: 1 });
      expect(err.message).toBe(
        'Caller "erp" is over its budget of 100 vault reads per minute on this instance (reads the cache could not answer); retry after 1 s',
      );
      advance(600);
      quota.takeMiss(erp);
      expect(() => quota.takeMiss(erp)).toThrow(TooManyRequestsError);
    });

    it('follows rateLimit.missesPerMinute, per caller, apart from the request rate', () => {
      const { quota } = setup();
      const prober = { ...caller('prober', 600), missesPerMinute: 2 };
      quota.takeMiss(prober);
      quota.takeMiss(prober);
      expect(refusal(() => quota.takeMiss(prober)).retryAfterSeconds).toBe(30);
      // Its request rate is untouched, and so is another caller's budget.
      quota.take(prober, 600);
      expect(() => quota.takeMiss({ ...caller('quiet', 1), missesPerMinute: 1 })).not.toThrow();
      // Requests do not spend misses either.
      const busy = { ...caller('busy', 10), missesPerMinute: 1 };
      quota.take(busy, 10);
      expect(() => quota.takeMiss(busy)).not.toThrow();
    });

    it('takes the budget from the caller as the policy made it: the policy alone applies the default', () => {
      // @ts-expect-error A caller always carries its miss budget (AccessPolicy fills in the default).
      const unbudgeted: Caller = { name: 'raw', operator: false, method: 'apiKey', requestsPerMinute: 60 };
      expect(unbudgeted.missesPerMinute).toBeUndefined();
      const { quota } = setup();
      const one = { ...caller('one', 60), missesPerMinute: 1 };
      quota.takeMiss(one);
      expect(refusal(() => quota.takeMiss(one)).message).toContain('its budget of 1 vault reads per minute');
    });
  });
});
