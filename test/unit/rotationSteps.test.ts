import type { AdoptionRow } from '../../shared/adoption/adoptionTypes';
import {
  ADOPTION_SETTLE_MS,
  decideRetirement,
  findOldKeyId,
  leaseHeldByOther,
  LEASE_MS,
  holdersOf,
  newRotationRecord,
  passwordEndDate,
  planPassword,
  remedyOf,
  resumeState,
  retirementDeadline,
  rotationIdOf,
  stepOf,
  type PasswordView,
} from '../../shared/rotation/rotationSteps';
import type { RotationRecord } from '../../shared/rotation/rotationTypes';

const HOUR = 3_600_000;
const T0 = new Date('2026-03-01T10:00:00.000Z');
const at = (hours: number): Date => new Date(T0.getTime() + hours * HOUR);
const OURS = 'secret-broker rot-1';
const pw = (keyId: string, displayName: string | null, hint: string | null = null): PasswordView => ({ keyId, displayName, hint });
const SETTINGS = { adoptionWindowHours: 72, retireAfterHours: 72 };

function record(overrides: Partial<RotationRecord> = {}): RotationRecord {
  return {
    ...newRotationRecord({
      id: 'rot-1',
      vault: 'default',
      secret: 'erp',
      applicationObjectId: 'app-1',
      validityDays: 180,
      reason: 'manual',
      oldVersion: 'v1',
      oldExpiresOn: null,
      carriedTags: {},
      now: T0,
    }),
    ...overrides,
  };
}

function row(caller: string, version: string, lastRead: Date): AdoptionRow {
  return { vault: 'default', secret: 'erp', caller, version, since: lastRead.toISOString(), lastRead: lastRead.toISOString() };
}

describe('rotation ids and records', () => {
  it('makes a sortable id from the start time', () => {
    expect(rotationIdOf(T0, '3f9a1c')).toBe('rot-20260301T100000Z-3f9a1c');
  });

  it('starts a record with the display name carrying its id and no holders', () => {
    expect(record()).toMatchObject({ state: 'started', displayName: 'secret-broker rot-1', holders: [], createdAt: T0.toISOString() });
  });

  it('ends a password validityDays later, in whole seconds', () => {
    expect(passwordEndDate(new Date('2026-03-01T10:00:00.789Z'), 90).toISOString()).toBe('2026-05-30T10:00:00.000Z');
  });
});

describe('stepOf and resumeState', () => {
  it.each([
    ['started', 'newPassword'],
    ['passwordAdded', 'newPassword'],
    ['stored', 'announce'],
    ['awaitingAdoption', 'awaitAdoption'],
    ['retiring', 'removeOldPassword'],
    ['passwordRemoved', 'disableOldVersion'],
    ['oldVersionDisabled', 'notifyRetired'],
    ['retired', undefined],
    ['failed', undefined],
  ] as const)('%s → %s', (state, step) => {
    expect(stepOf(state)).toBe(step);
  });

  it('resumes a failed rotation from the state it failed in, and a retired one not at all', () => {
    const failure = {
      step: 'announce' as const,
      resumeState: 'stored' as const,
      service: 'keyVault' as const,
      code: 'Forbidden',
      message: 'm',
      remedy: 'r',
      at: T0.toISOString(),
    };
    expect(resumeState(record({ state: 'failed', failure }))).toBe('stored');
    expect(resumeState(record({ state: 'retired' }))).toBeUndefined();
    expect(resumeState(record({ state: 'passwordAdded' }))).toBe('passwordAdded');
  });
});

describe('planPassword', () => {
  it('adds when the application holds only the old password', () => {
    expect(planPassword(OURS, [pw('old', 'hand-made')], new Map())).toEqual({ kind: 'add', remove: [] });
  });

  it('adopts our password when a vault version carries its keyId (a crash after the write)', () => {
    expect(planPassword(OURS, [pw('old', null), pw('NEW', OURS)], new Map([['new', 'v2']]))).toEqual({
      kind: 'adopt',
      keyId: 'NEW',
      version: 'v2',
      remove: [],
    });
  });

  it('removes our password whose text is lost before adding again', () => {
    expect(planPassword(OURS, [pw('old', null), pw('lost', OURS)], new Map([['old', 'v1']]))).toEqual({ kind: 'add', remove: ['lost'] });
  });

  it('adopts the stored one of two of ours and removes the other', () => {
    expect(planPassword(OURS, [pw('a', OURS), pw('b', OURS)], new Map([['b', 'v2']]))).toEqual({
      kind: 'adopt',
      keyId: 'b',
      version: 'v2',
      remove: ['a'],
    });
  });

  it('refuses a third password, counting only the ones the broker did not add', () => {
    expect(planPassword(OURS, [pw('x', 'one'), pw('y', null), pw('lost', OURS)], new Map())).toEqual({
      kind: 'refuse',
      foreign: ['x', 'y'],
    });
  });
});

describe('findOldKeyId', () => {
  const passwords = [pw('k1', 'hand-made', 'abc'), pw('k2', 'other', 'xyz'), pw('k3', OURS, 'abc')];

  it('takes the old version’s entraKeyId tag first, when that password’s hint is the old value’s first three characters', () => {
    expect(findOldKeyId('K2', passwords, OURS, 'xyz-old')).toEqual({ keyId: 'K2', source: 'tag' });
  });

  it.each([
    ['its hint is not the old value’s', 'k2', 'abcdef'],
    ['the application holds no such password', 'tagged', 'abcdef'],
    ['the old value is unknown', 'k2', undefined],
  ])('keeps (unknown) a password the entraKeyId tag names when %s', (_label, tag, value) => {
    expect(findOldKeyId(tag, passwords, OURS, value)).toEqual({ keyId: undefined, source: 'unknown' });
  });

  it('finds the one password whose hint is the old value’s first three characters, never ours', () => {
    expect(findOldKeyId(undefined, passwords, OURS, 'abcdef')).toEqual({ keyId: 'k1', source: 'hint' });
  });

  it.each([
    ['no hint matches', 'qqq-value', passwords],
    ['two hints match', 'abc-value', [...passwords, pw('k4', 'again', 'abc')]],
    ['the value is too short', 'ab', passwords],
    ['the value is unknown', undefined, passwords],
  ])('is unknown when %s', (_label, value, list) => {
    expect(findOldKeyId(undefined, list, OURS, value)).toEqual({ keyId: undefined, source: 'unknown' });
  });
});

describe('leaseHeldByOther', () => {
  const now = new Date('2026-03-01T10:00:00.000Z');
  const later = new Date(now.getTime() + LEASE_MS).toISOString();
  it('is true only for an unexpired lease of another run', () => {
    expect(leaseHeldByOther({ claimedBy: 'a', claimedUntil: later }, 'b', now)).toBe(true);
    expect(leaseHeldByOther({ claimedBy: 'a', claimedUntil: later }, 'a', now)).toBe(false);
    expect(leaseHeldByOther({ claimedBy: 'a', claimedUntil: now.toISOString() }, 'b', now)).toBe(false);
    expect(leaseHeldByOther({}, 'b', now)).toBe(false);
  });
});

describe('retirement', () => {
  it('is due retireAfterHours after the new version when the old one has no expiry', () => {
    expect(retirementDeadline(T0, null, 72)).toEqual(at(72));
  });

  it('is never later than a day before the old version expires', () => {
    expect(retirementDeadline(T0, at(48), 72)).toEqual(at(24));
    expect(retirementDeadline(T0, at(200), 72)).toEqual(at(72));
  });

  it('is held back by each caller whose last read is the old version within the adoption window', () => {
    const rows = [
      row('erp', 'v1', at(-1)),
      row('bc', 'v2', at(-1)),
      row('ci', 'v1', at(-73)),
      row('app', 'v1', at(-72)),
      row('erp', 'v1', at(-2)),
    ];
    expect(holdersOf(rows, 'v1', T0, 72)).toEqual(['app', 'erp']);
  });

  it('retires once every caller moved', () => {
    const r = record({ state: 'awaitingAdoption', newVersion: 'v2', newVersionCreatedAt: T0.toISOString() });
    expect(decideRetirement(r, [row('erp', 'v2', at(1))], at(1), SETTINGS)).toEqual({
      retire: true,
      reason: 'adopted',
      holders: [],
      deadline: at(72),
    });
  });

  it('believes "every caller moved" only two flush intervals after the new version, when every instance has written its reads', () => {
    const r = record({ state: 'awaitingAdoption', newVersion: 'v2', newVersionCreatedAt: T0.toISOString() });
    const early = new Date(T0.getTime() + ADOPTION_SETTLE_MS - 1);
    const settled = new Date(T0.getTime() + ADOPTION_SETTLE_MS);
    expect(decideRetirement(r, [row('erp', 'v2', early)], early, SETTINGS)).toEqual({
      retire: false,
      holders: [],
      deadline: at(72),
      settlesAt: settled,
    });
    expect(decideRetirement(r, [row('erp', 'v2', early)], settled, SETTINGS)).toMatchObject({ retire: true, reason: 'adopted' });
    expect(ADOPTION_SETTLE_MS).toBe(60_000);
  });

  it('waits for a caller until the deadline, then retires anyway, naming it', () => {
    const r = record({ state: 'awaitingAdoption', newVersionCreatedAt: T0.toISOString() });
    const legacy = (now: Date) => [row('legacy', 'v1', now)];
    expect(decideRetirement(r, legacy(at(71)), at(71), SETTINGS)).toEqual({ retire: false, holders: ['legacy'], deadline: at(72) });
    expect(decideRetirement(r, legacy(at(72)), at(72), SETTINGS)).toEqual({
      retire: true,
      reason: 'deadline',
      holders: ['legacy'],
      deadline: at(72),
    });
  });

  it('takes the old version’s expiry into the deadline', () => {
    const r = record({ oldExpiresOn: at(30).toISOString(), newVersionCreatedAt: T0.toISOString() });
    expect(decideRetirement(r, [row('legacy', 'v1', at(5))], at(5), SETTINGS)).toMatchObject({ retire: false, deadline: at(6) });
    expect(decideRetirement(r, [row('legacy', 'v1', at(6))], at(6), SETTINGS)).toMatchObject({ retire: true, reason: 'deadline' });
  });
});

describe('remedyOf', () => {
  it.each([
    ['graph', 'Authorization_RequestDenied', /Application\.ReadWrite\.OwnedBy.*owner of application app-1.*Authorization_RequestDenied/],
    ['graph', 'Request_ResourceNotFound', /entraAppObjectId tag/],
    ['keyVault', 'Forbidden', /Key Vault Secrets Officer/],
    ['broker', 'TooManyPasswords', /already holds 2 passwords the broker did not add/],
    ['graph', 'TooManyRequests', /TooManyRequests.*retries/],
  ] as const)('%s %s', (service, code, pattern) => {
    expect(remedyOf(service, code, { applicationObjectId: 'app-1' })).toMatch(pattern);
  });
});
