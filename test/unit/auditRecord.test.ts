import { auditOrigin, buildAuditRecord, clientAddressOf, INVALID } from '../../shared/audit/auditRecord';
import type { Caller } from '../../shared/callers/accessPolicy';

const headers = (values: Record<string, string>) => new Headers(values);
const origin = auditOrigin(headers({}), { invocationId: 'inv-1' });
const apiKeyCaller: Caller = {
  name: 'erp',
  operator: false,
  method: 'apiKey',
  keyId: 'abcdef012345',
  requestsPerMinute: 60,
  missesPerMinute: 100,
};
const AT = new Date('2026-12-01T10:00:00.000Z');

describe('buildAuditRecord', () => {
  it('records a served secret with every field, nulls where a field does not apply', () => {
    const record = buildAuditRecord(
      origin,
      apiKeyCaller,
      {
        operation: 'resolve',
        vault: 'default',
        secret: 'erp-token',
        version: 'a'.repeat(32),
        status: 200,
        code: 'OK',
        cache: 'hit',
        validity: 'valid',
        durationMs: 1.234,
      },
      AT,
    );
    expect(record).toEqual({
      time: '2026-12-01T10:00:00.000Z',
      operation: 'resolve',
      caller: 'erp',
      authMethod: 'apiKey',
      appId: null,
      objectId: null,
      keyId: 'abcdef012345',
      clientAddress: null,
      requestId: null,
      invocationId: 'inv-1',
      operationId: null,
      item: null,
      vault: 'default',
      vaultLength: null,
      secret: 'erp-token',
      secretLength: null,
      version: 'a'.repeat(32),
      versionLength: null,
      outcome: 'allowed',
      status: 200,
      code: 'OK',
      cache: 'hit',
      validity: 'valid',
      durationMs: 1.2,
      suppressed: null,
    });
  });

  it.each([
    ['erp\ntoken', 9],
    ['erp token status=200', 20],
    ['"quoted"', 8],
    ['a=b', 3],
    ['ünïcödé', 7],
    ['x'.repeat(10_000), 10_000],
  ])('records an invalid name (case %#) as invalid with its length, never verbatim', (name, length) => {
    const record = buildAuditRecord(origin, apiKeyCaller, {
      operation: 'resolve',
      vault: 'bad\nvault',
      secret: name,
      version: 'v1\r\n',
      status: 400,
      code: 'InvalidSecretName',
      durationMs: 0,
    });
    expect(record).toMatchObject({
      secret: INVALID,
      secretLength: length,
      vault: INVALID,
      vaultLength: 9,
      version: INVALID,
      versionLength: 4,
    });
    expect(JSON.stringify(record)).not.toContain(name.slice(0, 5));
  });

  it('records a name that is not a string as invalid without a length', () => {
    const record = buildAuditRecord(origin, undefined, {
      operation: 'resolve',
      secret: 42,
      status: 400,
      code: 'InvalidRequest',
      durationMs: 0,
    });
    expect(record).toMatchObject({ secret: INVALID, secretLength: null, caller: null, authMethod: null, outcome: 'failed' });
  });

  it.each([
    [200, 'allowed'],
    [401, 'denied'],
    [403, 'denied'],
    [404, 'failed'],
    [429, 'failed'],
    [503, 'failed'],
  ])('calls status %i %s', (status, outcome) => {
    expect(buildAuditRecord(origin, apiKeyCaller, { operation: 'list', status, code: 'X', durationMs: 0 }).outcome).toBe(outcome);
  });

  it('records a listing as * and a batch item with its position', () => {
    expect(buildAuditRecord(origin, apiKeyCaller, { operation: 'list', status: 200, code: 'OK', durationMs: 0 })).toMatchObject({
      vault: '*',
      secret: '*',
    });
    expect(
      buildAuditRecord(origin, apiKeyCaller, { operation: 'resolve', item: 7, secret: 'a', status: 200, code: 'OK', durationMs: 0 }).item,
    ).toBe(7);
  });

  it('keeps only known cache states, validities and plain codes', () => {
    const record = buildAuditRecord(origin, apiKeyCaller, {
      operation: 'resolve',
      status: 500,
      code: 'Internal\nError',
      cache: 'hit\n',
      validity: 'forever',
      durationMs: 0,
    });
    expect(record).toMatchObject({ code: 'InternalError', cache: 'none', validity: null });
  });
});

describe('auditOrigin', () => {
  it('takes the request id, the invocation id and the trace id when each validates', () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    expect(
      auditOrigin(headers({ 'x-ms-client-request-id': 'erp-run-42', 'x-forwarded-for': '203.0.113.7:51234' }), {
        invocationId: 'inv-9',
        traceParent: `00-${traceId}-b7ad6b7169203331-01`,
      }),
    ).toEqual({ clientAddress: '203.0.113.7', requestId: 'erp-run-42', invocationId: 'inv-9', operationId: traceId });
  });

  it('drops a request id that could break a field, and a malformed trace parent', () => {
    expect(auditOrigin(headers({ 'x-request-id': 'a b' }), { invocationId: 'inv\n', traceParent: 'nonsense' })).toEqual({
      clientAddress: null,
      requestId: null,
      invocationId: null,
      operationId: null,
    });
  });
});

describe('clientAddressOf', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['203.0.113.7:443', '203.0.113.7'],
    ['10.0.0.1, 198.51.100.2:6000', '198.51.100.2'],
    ['[2001:db8::1]:443', '2001:db8::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['999.1.1.1:80', null],
    ['evil\nstatus=200', null],
    ['1.2.3.4, not-an-ip', null],
    ['', null],
  ])('reads %j as %j (the last hop, the one the front end added)', (header, expected) => {
    expect(clientAddressOf(header)).toBe(expected);
  });
});
