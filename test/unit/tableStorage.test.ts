import { RestError } from '@azure/data-tables';
import { describeStorageError } from '../../shared/storage/tableStorage';

describe('describeStorageError', () => {
  it('names the status and the service code, never the response body the SDK puts in the message', () => {
    const body = JSON.stringify({ 'odata.error': { code: 'AuthorizationPermissionMismatch', message: { value: 'secret-ish detail' } } });
    const err = new RestError(body, { statusCode: 403 });
    expect(describeStorageError(err)).toBe('403 AuthorizationPermissionMismatch');
  });

  it('says "storage error" when the code cannot be read, and keeps a plain error to one short line', () => {
    expect(describeStorageError(new RestError('<html>gateway</html>', { statusCode: 502 }))).toBe('502 storage error');
    expect(describeStorageError(new Error(`connect ECONNREFUSED\n${'x'.repeat(500)}`))).toBe('Error: connect ECONNREFUSED');
    expect(describeStorageError('nope')).toBe('non-error value thrown');
  });
});
