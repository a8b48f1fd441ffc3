import { SecretNotFoundError, VaultThrottledError, VaultUnavailableError } from '../../shared/errors';
import { BACKOFF_BASE_MS, BACKOFF_MAX_MS, PAUSE_JITTER, VaultPacer } from '../../shared/secrets/vaultPacer';

const throttled = (retryAfterSeconds?: number) =>
  new VaultThrottledError('Vault "contoso" is throttling requests', retryAfterSeconds === undefined ? {} : { retryAfterSeconds });
const failing = () => new VaultUnavailableError('Vault "contoso" failed (HTTP 503)', 'VaultUnreachable');

/** A pacer on a fake clock: its sleeps move the clock and are recorded. */
function setup(opts: { random?: () => number; deadlineMs?: number } = {}) {
  let now = 1_000_000;
  const sleeps: number[] = [];
  const options = {
    now: () => now,
    random: opts.random ?? (() => 0),
    deadlineMs: opts.deadlineMs ?? 20_000,
    sleep: (ms: number) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
  const advance = (ms: number): void => {
    now += ms;
  };
  return { pacer: new VaultPacer('contoso', options), other: new VaultPacer('fabrikam', options), sleeps, advance };
}

/** An attempt that throws `failures` in turn, then answers 'ok'; counts its calls. */
function script(...failures: Error[]) {
  const attempt = jest.fn(() => {
    const next = failures.shift();
    return next ? Promise.reject(next) : Promise.resolve('ok');
  });
  return attempt;
}

describe('VaultPacer', () => {
  it.each([0, 0.5, 0.999])('waits Retry-After lengthened by at most the jitter share (random %p), then tries again', async (r) => {
    const { pacer, sleeps } = setup({ random: () => r });
    const attempt = script(throttled(2));
    expect(await pacer.run(attempt)).toBe('ok');
    expect(attempt).toHaveBeenCalledTimes(2);
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThanOrEqual(2000);
    expect(sleeps[0]).toBeLessThan(2000 * (1 + PAUSE_JITTER));
    expect(sleeps[0]).toBeCloseTo(2000 * (1 + PAUSE_JITTER * r));
  });

  it('backs off exponentially, up to a cap, where the answer names no Retry-After', async () => {
    const { pacer, sleeps } = setup({ deadlineMs: 60_000 });
    const attempt = script(failing(), throttled(), failing(), failing(), failing(), failing(), failing(), failing());
    expect(await pacer.run(attempt)).toBe('ok');
    expect(sleeps).toEqual([250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    expect(BACKOFF_BASE_MS).toBe(250);
    expect(BACKOFF_MAX_MS).toBe(8000);
  });

  it('answers what the vault last said when an attempt is cut short by the deadline, not the timeout it caused', async () => {
    const { pacer, advance } = setup({ deadlineMs: 3_000 });
    // Throttled for 2 s; the next attempt is given the second left and times out at the deadline.
    const attempt = jest.fn((remainingMs: number) => {
      if (attempt.mock.calls.length === 1) return Promise.reject(throttled(2));
      advance(remainingMs);
      return Promise.reject(new VaultUnavailableError('Vault "contoso" did not answer in time', 'Timeout'));
    });
    const err: unknown = await pacer.run(attempt).catch((e: unknown) => e);
    expect(attempt).toHaveBeenCalledTimes(2);
    expect(err).toBeInstanceOf(VaultThrottledError);
    expect((err as VaultThrottledError).retryAfterSeconds).toBe(2);
  });

  it('still answers a timeout that ends before the deadline as the vault not answering', async () => {
    const { pacer, advance } = setup({ deadlineMs: 30_000 });
    const attempt = jest.fn(() => {
      advance(10_000);
      return Promise.reject(new VaultUnavailableError('Vault "contoso" did not answer in time', 'Timeout'));
    });
    const err: unknown = await pacer.run(attempt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultUnavailableError);
  });

  it('starts the backoff over after a success', async () => {
    const { pacer, sleeps } = setup();
    expect(await pacer.run(script(failing(), failing()))).toBe('ok');
    expect(await pacer.run(script(failing()))).toBe('ok');
    expect(sleeps).toEqual([250, 500, 250]);
  });

  it('fails at once with 429 VaultThrottled and the Retry-After the vault asked for when the deadline would pass', async () => {
    // The pause is 10 s plus almost 20 % jitter; Retry-After is what the vault asked for.
    const { pacer, sleeps } = setup({ deadlineMs: 5_000, random: () => 0.999 });
    const attempt = script(throttled(10));
    const err = await pacer.run(attempt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultThrottledError);
    expect(err).toMatchObject({ status: 429, code: 'VaultThrottled', retryAfterSeconds: 10 });
    expect(attempt).toHaveBeenCalledTimes(1);
    expect(sleeps).toEqual([]);
  });

  it('keeps a failing vault 503 VaultUnavailable, with Retry-After, when the deadline would pass', async () => {
    const { pacer } = setup({ deadlineMs: 1_000 });
    const attempt = script(failing(), failing(), failing(), failing());
    const err = await pacer.run(attempt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultUnavailableError);
    expect(err).toMatchObject({ status: 503, code: 'VaultUnavailable', vaultCause: 'VaultUnreachable', retryAfterSeconds: 1 });
    // 250 + 500 ms of pauses fit in 1 s; the third pause (1 s) does not.
    expect(attempt).toHaveBeenCalledTimes(3);
  });

  it('pauses every call on the vault, and no call on another vault', async () => {
    const { pacer, other, sleeps } = setup();
    await expect(pacer.run(script(throttled(3)), { deadline: 1_000_000 + 1_000 })).rejects.toBeInstanceOf(VaultThrottledError);
    const later = script();
    expect(await other.run(later)).toBe('ok');
    expect(sleeps).toEqual([]);
    expect(await pacer.run(later)).toBe('ok');
    expect(sleeps).toEqual([3000]);
    expect(later).toHaveBeenCalledTimes(2);
  });

  it('neither waits nor retries when a stale value can answer instead', async () => {
    const { pacer, sleeps } = setup();
    const first = script(throttled(1));
    await expect(pacer.run(first, { failFast: true })).rejects.toBeInstanceOf(VaultThrottledError);
    const second = script();
    await expect(pacer.run(second, { failFast: true })).rejects.toMatchObject({ code: 'VaultThrottled', retryAfterSeconds: 1 });
    expect(first).toHaveBeenCalledTimes(1);
    expect(second).not.toHaveBeenCalled();
    expect(sleeps).toEqual([]);
  });

  it('passes a definite answer on at once, without pausing the vault', async () => {
    const { pacer, sleeps } = setup();
    const attempt = script(new SecretNotFoundError('No secret "x" in vault "contoso"'));
    await expect(pacer.run(attempt)).rejects.toBeInstanceOf(SecretNotFoundError);
    expect(attempt).toHaveBeenCalledTimes(1);
    expect(pacer.pauseMs()).toBe(0);
    expect(sleeps).toEqual([]);
  });

  it('gives each attempt the time left to the deadline', async () => {
    const { pacer } = setup({ deadlineMs: 20_000 });
    const remaining: number[] = [];
    const failures = [failing()];
    await pacer.run((ms) => {
      remaining.push(ms);
      const next = failures.shift();
      return next ? Promise.reject(next) : Promise.resolve('ok');
    });
    expect(remaining).toEqual([20_000, 19_750]);
  });
});
