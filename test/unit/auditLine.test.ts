import { AUDIT_LOG_PREFIX } from '../../shared/audit/auditLog';
import { AuditLineTemplate, isoTime } from '../../shared/audit/auditLine';
import type { AuditEntry, AuditOrigin } from '../../shared/audit/auditRecord';
import { buildAuditRecord } from '../../shared/audit/auditRecord';
import type { Caller } from '../../shared/callers/accessPolicy';

const keyCaller: Caller = {
  name: 'erp',
  operator: false,
  method: 'apiKey',
  keyId: 'abcdef012345',
  requestsPerMinute: 60,
  missesPerMinute: 10,
};
const bearer: Caller = {
  name: 'ops "quoted"\n',
  operator: true,
  method: 'bearer',
  appId: '11111111-2222-3333-4444-555555555555',
  objectId: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
  requestsPerMinute: 60,
  missesPerMinute: 10,
};
const origins: AuditOrigin[] = [
  { clientAddress: '203.0.113.9', requestId: 'req-1', invocationId: 'inv-1', operationId: '1'.repeat(32) },
  { clientAddress: null, requestId: null, invocationId: null, operationId: null },
  { clientAddress: '2001:db8::1', requestId: 'a:b.c_d-e', invocationId: null, operationId: null },
];
const entries: Omit<AuditEntry, 'durationMs'>[] = [
  {
    operation: 'resolve',
    vault: 'default',
    secret: 'erp-token',
    version: 'b'.repeat(32),
    status: 200,
    code: 'OK',
    cache: 'hit',
    validity: 'valid',
  },
  {
    operation: 'resolve',
    vault: 'keys',
    secret: 'ERP-Token',
    version: 'latest',
    status: 200,
    code: 'OK',
    cache: 'hit',
    validity: 'expired',
  },
  // Whatever does not validate is recorded as the record records it.
  {
    operation: 'resolve',
    vault: 'bad alias',
    secret: 'x\ny',
    version: 'v1',
    status: 200,
    code: 'not a code!',
    cache: 'weird',
    validity: 'later',
  },
  { operation: 'metadata', item: 3, secret: 'erp-token', status: 404, code: 'SecretNotFound', cache: 'negative' },
];

describe('AuditLineTemplate', () => {
  it('writes exactly the line AuditLog.add writes for the same record, whatever the caller, entry, origin, time and duration', () => {
    let checked = 0;
    for (const caller of [keyCaller, bearer, undefined]) {
      for (const entry of entries) {
        const template = new AuditLineTemplate(caller, entry);
        for (const origin of origins) {
          for (const [now, durationMs] of [
            [Date.parse('2026-12-06T12:00:00.000Z'), 0],
            [Date.parse('2026-12-06T12:00:00.123Z'), 1.26],
            [Date.parse('2027-01-01T00:00:00.999Z'), 12345.04],
          ] as const) {
            const expected = AUDIT_LOG_PREFIX + JSON.stringify(buildAuditRecord(origin, caller, { ...entry, durationMs }, new Date(now)));
            expect(template.line(origin, durationMs, now)).toBe(expected);
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(3 * entries.length * origins.length * 3);
  });
});

describe('isoTime', () => {
  it('is the ISO text of each millisecond, made again when the millisecond changes', () => {
    const t = Date.parse('2026-12-06T12:00:00.000Z');
    expect(isoTime(t)).toBe('2026-12-06T12:00:00.000Z');
    expect(isoTime(t)).toBe('2026-12-06T12:00:00.000Z');
    expect(isoTime(t + 1)).toBe('2026-12-06T12:00:00.001Z');
    expect(isoTime(t)).toBe('2026-12-06T12:00:00.000Z');
  });
});
