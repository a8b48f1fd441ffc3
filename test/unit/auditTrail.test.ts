import type { AuditRecord } from '../../shared/audit/auditRecord';
import { auditOrigin } from '../../shared/audit/auditRecord';
import { AuditTrail } from '../../shared/audit/auditTrail';

function setup(forwardedFor = '198.51.100.7, 203.0.113.9:50123') {
  const records: AuditRecord[] = [];
  const trail = new AuditTrail(auditOrigin(new Headers({ 'x-forwarded-for': forwardedFor }), { invocationId: 'inv-1' }), (r) =>
    records.push(r),
  );
  return { trail, records };
}

describe('AuditTrail', () => {
  it('keys the refusal limit on the address the records carry: the last X-Forwarded-For hop', () => {
    expect(setup().trail.clientAddress).toBe('203.0.113.9');
    expect(setup('not-an-address').trail.clientAddress).toBeNull();
  });

  it('writes accesses at once, and a batch item refused as it comes', () => {
    const { trail, records } = setup();
    trail.record({ operation: 'resolve', secret: 'a', status: 200, code: 'OK', durationMs: 0 });
    trail.record({ operation: 'resolve', item: 0, secret: 'b', status: 403, code: 'Forbidden', durationMs: 0 });
    expect(records.map((r) => [r.secret, r.status])).toEqual([
      ['a', 200],
      ['b', 403],
    ]);
    expect(trail.count).toBe(2);
  });

  it.each([401, 403])('holds the refusal (%i) of a request until it is settled: written, or dropped past the refusal limit', (status) => {
    const kept = setup();
    kept.trail.record({ operation: 'resolve', secret: 'a', status, code: 'X', durationMs: 0 });
    expect([kept.records.length, kept.trail.count]).toEqual([0, 1]);
    kept.trail.settle(false);
    expect(kept.records.map((r) => [r.status, r.outcome, r.clientAddress])).toEqual([[status, 'denied', '203.0.113.9']]);
    kept.trail.settle(false);
    expect(kept.records).toHaveLength(1);

    const dropped = setup();
    dropped.trail.record({ operation: 'resolve', secret: 'a', status, code: 'X', durationMs: 0 });
    dropped.trail.settle(true);
    expect(dropped.records).toEqual([]);
  });
});
