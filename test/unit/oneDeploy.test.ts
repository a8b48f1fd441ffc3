import { isBlobRolePending, readDeploymentPoll } from '../../cli/deploy/oneDeploy';

const body = (status: number, statusText = ''): string =>
  JSON.stringify({ id: 'abc', status, status_text: statusText, complete: status >= 3 });

describe('readDeploymentPoll', () => {
  it.each([
    [200, body(0), 'running'],
    [200, body(1), 'running'],
    [200, body(2), 'running'],
    [202, body(1), 'running'],
    [200, '{}', 'running'],
    [200, body(4), 'succeeded'],
  ])('%i with %s is %s', (status, text, kind) => {
    expect(readDeploymentPoll(status, text, true).kind).toBe(kind);
  });

  it.each([
    [-1, 'it was cancelled'],
    [3, 'it failed: Failed to upload the package'],
    [5, 'another deployment was in progress (conflict)'],
    [6, 'it only partly succeeded: Failed to upload the package'],
  ])('ends on Kudu status %i: %s', (status, reason) => {
    expect(readDeploymentPoll(200, body(status, status === -1 || status === 5 ? '' : 'Failed to upload the package'), true)).toEqual({
      kind: 'failed',
      reason,
    });
  });

  it('takes a 404 after an earlier answer as a finished, recycled record, but not before one', () => {
    expect(readDeploymentPoll(404, '', true)).toEqual({ kind: 'succeeded' });
    expect(readDeploymentPoll(404, 'Not Found', false)).toEqual({ kind: 'error', reason: 'answered 404: Not Found' });
    expect(readDeploymentPoll(500, 'oops', true).kind).toBe('error');
  });
});

describe('isBlobRolePending', () => {
  it.each([
    'publish answered 403: {"error":{"code":"AuthorizationPermissionMismatch","message":"This request is not authorized to perform this operation using this permission."}}',
    'the deployment failed: it failed: Failed to upload blob: Status: 403 (This request is not authorized to perform this operation.)',
    'the deployment failed: it failed: storage returned 403 AuthorizationFailure',
  ])('waits on %s', (failure) => {
    expect(isBlobRolePending(failure)).toBe(true);
  });

  it.each([
    'publish answered 403: {"error":{"code":"AuthorizationFailed","message":"The client does not have authorization to perform action Microsoft.Web/sites/publish/action"}}',
    'the deployment failed: it failed: host.json is missing from the package root',
    'publish answered 409: another deployment is in progress',
  ])('fails at once on %s', (failure) => {
    expect(isBlobRolePending(failure)).toBe(false);
  });
});
