import type { AuditRecord } from '../../shared/audit/auditRecord';
import {
  MAX_REFUSAL_ADDRESSES,
  REFUSAL_WINDOW_MS,
  REFUSALS_PER_WINDOW,
  RefusalLimiter,
  refusalKeyOf,
} from '../../shared/http/refusalLimiter';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');

function setup(options: { limit?: number; windowMs?: number; maxAddresses?: number } = {}) {
  let now = T0;
  const records: AuditRecord[] = [];
  const limiter = new RefusalLimiter((record) => records.push(record), { ...options, now: () => now });
  return { limiter, records, advance: (ms: number) => (now += ms) };
}

describe('RefusalLimiter', () => {
  afterEach(() => jest.useRealTimers());

  it('defaults to 60 refusals a minute per address, in at most 10,000 windows', () => {
    expect([REFUSALS_PER_WINDOW, REFUSAL_WINDOW_MS, MAX_REFUSAL_ADDRESSES]).toEqual([60, 60_000, 10_000]);
  });

  it('answers 60 refusals of an address as usual, then 429 with the seconds to the window end; another address is unaffected', () => {
    const { limiter, advance } = setup();
    const answers = Array.from({ length: 60 }, () => limiter.refuse('203.0.113.9'));
    expect(answers).toEqual(Array<number>(60).fill(0));
    expect(limiter.refuse('203.0.113.9')).toBe(60);
    advance(45_500);
    expect(limiter.refuse('203.0.113.9')).toBe(15);
    expect(limiter.refuse('198.51.100.4')).toBe(0);
    expect(limiter.refuse(null)).toBe(0);
  });

  it('turns 2,000 refusals of one address into 60 answered as usual and one record counting the other 1,940', () => {
    const { limiter, records, advance } = setup();
    let asUsual = 0;
    for (let i = 0; i < 2_000; i++) if (limiter.refuse('203.0.113.9') === 0) asUsual++;
    expect(asUsual).toBe(60);
    expect(records).toEqual([]);
    advance(REFUSAL_WINDOW_MS);
    limiter.sweep();
    expect(records).toEqual([
      {
        time: '2026-12-01T10:00:00.000Z',
        operation: 'refusals',
        caller: null,
        authMethod: null,
        appId: null,
        objectId: null,
        keyId: null,
        clientAddress: '203.0.113.9',
        requestId: null,
        invocationId: null,
        operationId: null,
        item: null,
        vault: null,
        vaultLength: null,
        secret: null,
        secretLength: null,
        version: null,
        versionLength: null,
        outcome: 'denied',
        status: 429,
        code: 'TooManyRequests',
        cache: 'none',
        validity: null,
        durationMs: 60_000,
        suppressed: 1_940,
      },
    ]);
    expect(limiter.size).toBe(0);
    limiter.sweep();
    expect(records).toHaveLength(1);
  });

  it('writes a window once, when the address is refused again after it, and starts it a new window', () => {
    const { limiter, records, advance } = setup({ limit: 2 });
    for (let i = 0; i < 5; i++) limiter.refuse(null);
    advance(61_000);
    expect(limiter.refuse(null)).toBe(0);
    expect(records.map((r) => [r.clientAddress, r.suppressed, r.durationMs])).toEqual([[null, 3, 60_000]]);
    expect(limiter.refuse(null)).toBe(0);
    expect(limiter.refuse(null)).toBe(60);
    limiter.dispose();
    expect(records.map((r) => [r.time, r.suppressed])).toEqual([
      ['2026-12-01T10:00:00.000Z', 3],
      ['2026-12-01T10:01:01.000Z', 1],
    ]);
  });

  it('writes nothing for a window that stayed within the limit, and drops ended windows', () => {
    const { limiter, records, advance } = setup();
    for (let i = 0; i < 100; i++) limiter.refuse(`10.0.0.${i}`);
    expect(limiter.size).toBe(100);
    advance(REFUSAL_WINDOW_MS);
    limiter.refuse('10.0.1.1');
    expect(limiter.size).toBe(1);
    expect(records).toEqual([]);
  });

  it('keeps at most maxAddresses windows: the oldest is closed early, its count written, nothing lost', () => {
    const { limiter, records, advance } = setup({ limit: 1, maxAddresses: 1_000 });
    let suppressed = 0;
    let most = 0;
    for (let i = 0; i < 20_000; i++) {
      const address = `2001:db8:${i.toString(16)}::1`;
      limiter.refuse(address);
      if (limiter.refuse(address) > 0) suppressed++;
      if (i % 1_000 === 0) advance(1);
      most = Math.max(most, limiter.size);
    }
    expect(most).toBe(1_000);
    limiter.dispose();
    expect(limiter.size).toBe(0);
    expect(records).toHaveLength(20_000);
    expect(records.reduce((sum, r) => sum + (r.suppressed ?? 0), 0)).toBe(suppressed);
    expect(suppressed).toBe(20_000);
  });

  it('counts an IPv6 address by its /64: rotating addresses within it gets no fresh window; the record names the prefix', () => {
    const { limiter, records, advance } = setup();
    const answers = Array.from({ length: 61 }, (_, i) => limiter.refuse(`2001:db8:1:2:${(i + 1).toString(16)}::${i.toString(16)}`));
    expect(answers.slice(0, 60)).toEqual(Array<number>(60).fill(0));
    expect(answers[60]).toBe(60);
    expect(limiter.refuse('2001:DB8:1:2:FFFF:FFFF:FFFF:FFFF')).toBe(60);
    expect(limiter.refuse('2001:db8:1:3::1')).toBe(0);
    expect(limiter.size).toBe(2);
    advance(REFUSAL_WINDOW_MS);
    limiter.sweep();
    expect(records.map((r) => [r.clientAddress, r.suppressed])).toEqual([['2001:db8:1:2::/64', 2]]);
  });

  it.each([
    ['203.0.113.9', '203.0.113.9'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['2001:db8:1:2::a', '2001:db8:1:2::/64'],
    ['2001:0DB8:0000:0002:0:0:0:1', '2001:db8:0:2::/64'],
    ['2001:db8::1', '2001:db8::/64'],
    ['2001:0:0:5::1', '2001:0:0:5::/64'],
    ['1::2:3:4:5:6:7', '1:0:2:3::/64'],
    ['2001:db8:1::1.2.3.4', '2001:db8:1::/64'],
    ['fe80::1%eth0', 'fe80::/64'],
    ['::1', '::/64'],
  ])('keys %s as %s', (address, key) => {
    expect(refusalKeyOf(address)).toBe(key);
  });

  it('makes room by closing a window with nothing suppressed before one holding a suppressed count', () => {
    const { limiter, records } = setup({ limit: 1, maxAddresses: 3 });
    limiter.refuse('203.0.113.1');
    expect(limiter.refuse('203.0.113.1')).toBe(60);
    limiter.refuse('203.0.113.2');
    limiter.refuse('203.0.113.3');
    limiter.refuse('203.0.113.4');
    expect(limiter.size).toBe(3);
    expect(records).toEqual([]);
    expect(limiter.refuse('203.0.113.1')).toBe(60);
    expect(limiter.refuse('203.0.113.2')).toBe(0);
    limiter.refuse('203.0.113.5');
    limiter.refuse('203.0.113.5');
    expect(records).toEqual([]);
    // Every window holds a suppressed count now: the oldest goes, its count written.
    expect(limiter.refuse('203.0.113.2')).toBe(60);
    limiter.refuse('203.0.113.6');
    expect(records.map((r) => [r.clientAddress, r.suppressed])).toEqual([['203.0.113.1', 2]]);
  });

  it('writes the record when the window closes, by its own timer, without another refusal', () => {
    jest.useFakeTimers({ now: T0 });
    const records: AuditRecord[] = [];
    const limiter = new RefusalLimiter((record) => records.push(record), { limit: 1 });
    limiter.refuse('203.0.113.9');
    limiter.refuse('203.0.113.9');
    jest.advanceTimersByTime(30_000);
    limiter.refuse('198.51.100.4');
    limiter.refuse('198.51.100.4');
    limiter.refuse('198.51.100.4');
    jest.advanceTimersByTime(29_999);
    expect(records).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(records.map((r) => [r.clientAddress, r.suppressed])).toEqual([['203.0.113.9', 1]]);
    jest.advanceTimersByTime(30_000);
    expect(records.map((r) => [r.clientAddress, r.suppressed])).toEqual([
      ['203.0.113.9', 1],
      ['198.51.100.4', 2],
    ]);
    expect(jest.getTimerCount()).toBe(0);
  });
});
