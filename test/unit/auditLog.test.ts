import { AUDIT_FLUSH_INTERVAL_MS, AUDIT_FLUSH_RECORDS, AuditLog, processAuditLog } from '../../shared/audit/auditLog';
import type { AuditRecord } from '../../shared/audit/auditRecord';
import { buildAuditRecord } from '../../shared/audit/auditRecord';

const ORIGIN = { clientAddress: '203.0.113.9', requestId: null, invocationId: null, operationId: null };

function record(n: number): AuditRecord {
  return buildAuditRecord(ORIGIN, undefined, { operation: 'resolve', secret: `s-${n}`, status: 200, code: 'OK', durationMs: n });
}

/**
 * Every record a list of writes carried, parsed: each write is exactly one `audit {json}` line,
 * read as the documented KQL reads a FunctionAppLogs row: `parse_json(substring(Message, 6))`.
 */
function parse(writes: string[]): AuditRecord[] {
  return writes.map((line) => {
    expect(line).toMatch(/^audit \{[^\n]*\}$/);
    return JSON.parse(line.slice('audit '.length)) as AuditRecord;
  });
}

describe('AuditLog', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('writes nothing per record, then the whole batch when the interval has passed, one write per record', () => {
    const writes: string[] = [];
    const log = new AuditLog({ write: (text) => writes.push(text) });
    for (let i = 0; i < 5; i++) log.add(record(i));
    jest.advanceTimersByTime(AUDIT_FLUSH_INTERVAL_MS - 1);
    expect(writes).toHaveLength(0);
    jest.advanceTimersByTime(1);
    // In Azure each worker log call is one row of the host log: one row, one record.
    expect(writes).toHaveLength(5);
    expect(parse(writes)).toEqual([0, 1, 2, 3, 4].map(record).map((r) => ({ ...r, time: expect.any(String) as unknown })));
    expect(log.pending).toBe(0);
  });

  it('writes at once when the buffer is full, so it never holds more than maxRecords', () => {
    const writes: string[] = [];
    const log = new AuditLog({ write: (text) => writes.push(text) });
    for (let i = 0; i < AUDIT_FLUSH_RECORDS * 2 + 1; i++) {
      log.add(record(i));
      // Nothing until the buffer is full, then the whole buffer at once.
      expect(writes).toHaveLength(Math.floor((i + 1) / AUDIT_FLUSH_RECORDS) * AUDIT_FLUSH_RECORDS);
    }
    expect(log.pending).toBe(1);
    jest.advanceTimersByTime(AUDIT_FLUSH_INTERVAL_MS);
    expect(parse(writes).map((r) => r.secret)).toEqual(Array.from({ length: AUDIT_FLUSH_RECORDS * 2 + 1 }, (_, i) => `s-${i}`));
  });

  it('keeps one JSON object per write, on one line, whatever a field holds', () => {
    const writes: string[] = [];
    const log = new AuditLog({ write: (text) => writes.push(text) });
    log.add({ ...record(1), code: 'line\nbreak "quoted"' });
    log.add(record(2));
    log.flush();
    expect(writes).toHaveLength(2);
    expect(parse(writes).map((r) => r.code)).toEqual(['line\nbreak "quoted"', 'OK']);
  });

  it('keeps the record whose write failed, and those after it, for the next flush', () => {
    const writes: string[] = [];
    let failAt: number | undefined = 1;
    const log = new AuditLog({
      write: (text) => {
        if (writes.length === failAt) throw new Error('host log unavailable');
        writes.push(text);
      },
    });
    for (let i = 0; i < 3; i++) log.add(record(i));
    expect(() => log.flush()).toThrow('host log unavailable');
    expect([writes.length, log.pending]).toEqual([1, 2]);
    failAt = undefined;
    log.add(record(3));
    log.flush();
    expect(parse(writes).map((r) => r.secret)).toEqual(['s-0', 's-1', 's-2', 's-3']);
  });

  it('loses no record when a write fails: they are written, in order, by the next flush', () => {
    const writes: string[] = [];
    let failing = true;
    const log = new AuditLog({
      write: (text) => {
        if (failing) throw new Error('host log unavailable');
        writes.push(text);
      },
    });
    log.add(record(1));
    log.add(record(2));
    expect(() => log.flush()).toThrow('host log unavailable');
    log.add(record(3));
    jest.advanceTimersByTime(AUDIT_FLUSH_INTERVAL_MS); // the timer's flush fails too, and is retried
    expect(log.pending).toBe(3);
    failing = false;
    jest.advanceTimersByTime(AUDIT_FLUSH_INTERVAL_MS);
    expect(parse(writes).map((r) => r.secret)).toEqual(['s-1', 's-2', 's-3']);
  });

  it('flushes to another target on request (the local host, before it answers)', () => {
    const own: string[] = [];
    const other: string[] = [];
    const log = new AuditLog({ write: (text) => own.push(text) });
    log.add(record(7));
    log.flush((text) => other.push(text));
    jest.advanceTimersByTime(AUDIT_FLUSH_INTERVAL_MS);
    expect([own.length, parse(other).map((r) => r.secret)]).toEqual([0, ['s-7']]);
  });

  it('writes what the process log still holds when the process exits', () => {
    const info = jest.spyOn(console, 'info').mockImplementation(() => undefined);
    try {
      const log = processAuditLog();
      expect(processAuditLog()).toBe(log);
      log.add(record(9));
      log.add(record(10));
      expect(info).not.toHaveBeenCalled();
      process.emit('exit', 0);
      // One console.info call per record: in Azure, one host log row per record.
      expect(info).toHaveBeenCalledTimes(2);
      expect(parse(info.mock.calls.map((args) => String(args[0]))).map((r) => r.secret)).toEqual(['s-9', 's-10']);
    } finally {
      info.mockRestore();
    }
  });
});
