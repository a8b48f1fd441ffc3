import type { Caller } from '../../shared/callers/accessPolicy';
import { CallerQuota } from '../../shared/callers/callerQuota';
import { TooManyRequestsError } from '../../shared/errors';

const caller = (name: string, requestsPerMinute: number): Caller => ({ name, operator: false, method: 'apiKey', requestsPerMinute });

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

  it('charges a batch its item count, and a batch larger than the bucket the whole bucket', () => {
    const { quota, advance } = setup();
    const erp = caller('erp', 60);
    quota.take(erp, 50);
    expect(refusal(() => quota.take(erp, 20)).retryAfterSeconds).toBe(10);
    quota.take(erp, 10);
    advance(60_000);
    quota.take(erp, 100);
    expect(() => quota.take(erp, 1)).toThrow(TooManyRequestsError);
  });
});
