import { RestError } from '@azure/core-rest-pipeline';
import { createHttpHeaders, createPipelineRequest } from '@azure/core-rest-pipeline';
import { CredentialUnavailableError } from '@azure/identity';
import { SecretNotFoundError } from '../../shared/errors';
import { translateVaultError } from '../../shared/secrets/translateVaultError';

function restError(status: number, body: unknown, headers: Record<string, string> = {}): RestError {
  const request = createPipelineRequest({ url: 'https://contoso.vault.azure.net/secrets/x' });
  const bodyAsText = JSON.stringify(body);
  return new RestError('vault said no', {
    statusCode: status,
    code: (body as { error?: { code?: string } }).error?.code,
    request,
    response: { status, headers: createHttpHeaders(headers), request, bodyAsText },
  });
}

const where = { vault: 'default', name: 'erp-token' };

describe('translateVaultError', () => {
  it.each([
    [
      404,
      { error: { code: 'SecretNotFound', message: 'A secret with (name/id) erp-token was not found' } },
      404,
      'SecretNotFound',
      'SecretNotFound',
    ],
    [
      403,
      {
        error: { code: 'Forbidden', message: 'Operation get is not allowed on a disabled secret.', innererror: { code: 'SecretDisabled' } },
      },
      409,
      'SecretDisabled',
      'SecretDisabled',
    ],
    [
      403,
      { error: { code: 'Forbidden', message: 'Client address is not authorized', innererror: { code: 'ForbiddenByFirewall' } } },
      503,
      'VaultForbiddenByFirewall',
      'ForbiddenByFirewall',
    ],
    [
      403,
      { error: { code: 'Forbidden', message: 'Caller is not authorized', innererror: { code: 'ForbiddenByRbac' } } },
      503,
      'VaultAccessDenied',
      'ForbiddenByRbac',
    ],
    [
      403,
      { error: { code: 'Forbidden', message: 'does not have secrets get permission', innererror: { code: 'ForbiddenByPolicy' } } },
      503,
      'VaultAccessDenied',
      'ForbiddenByPolicy',
    ],
    [401, { error: { code: 'Unauthorized', message: 'AKV10032: Invalid issuer.' } }, 503, 'VaultUnavailable', 'TokenUnavailable'],
    [500, { error: { code: 'InternalError', message: 'oops' } }, 503, 'VaultUnavailable', 'VaultUnreachable'],
  ])('maps HTTP %i %j to %i %s (cause %s)', (status, body, expectedStatus, code, cause) => {
    const err = translateVaultError(restError(status, body), where);
    expect(err).toMatchObject({ status: expectedStatus, code, vaultCause: cause });
    expect(err.message).not.toContain('vault said no');
  });

  it('keeps Retry-After of a 429', () => {
    const err = translateVaultError(restError(429, { error: { code: 'Throttled', message: 'slow down' } }, { 'retry-after': '7' }), where);
    expect(err).toMatchObject({ status: 429, code: 'VaultThrottled', retryAfterSeconds: 7 });
  });

  it('reads the inner code from the parsed details the SDK attaches (innerError)', () => {
    const e = Object.assign(new Error('x'), {
      statusCode: 403,
      details: { error: { code: 'Forbidden', innerError: { code: 'ForbiddenByFirewall' } } },
    });
    expect(translateVaultError(e, where).code).toBe('VaultForbiddenByFirewall');
  });

  it.each([
    ['Client address is not authorized and caller is not a trusted service.\r\nClient address: 10.0.0.1', 'VaultForbiddenByFirewall'],
    [
      "The user, group or application 'appid=x' does not have secrets list permission on key vault 'v;location=westeurope'.",
      'VaultAccessDenied',
    ],
    ['Caller is not authorized to perform action on resource.', 'VaultAccessDenied'],
  ])("classifies a 403 thrown while paging (no body, no details) by Key Vault's message: %s", (message, code) => {
    const e = Object.assign(new Error(message), { statusCode: 403, code: 'Forbidden' });
    expect(translateVaultError(e, where).code).toBe(code);
    expect(translateVaultError(e, where).message).not.toContain('10.0.0.1');
  });

  it('maps network failures, timeouts and token failures to 503 with their cause', () => {
    expect(translateVaultError(new RestError('socket hang up', { code: 'ECONNRESET' }), where)).toMatchObject({
      status: 503,
      vaultCause: 'VaultUnreachable',
    });
    expect(translateVaultError(Object.assign(new Error('aborted'), { name: 'AbortError' }), where)).toMatchObject({
      status: 503,
      vaultCause: 'Timeout',
    });
    expect(translateVaultError(new CredentialUnavailableError('no MI'), where)).toMatchObject({
      status: 503,
      code: 'VaultUnavailable',
      vaultCause: 'TokenUnavailable',
    });
  });

  it('passes its own errors through untouched', () => {
    const own = new SecretNotFoundError('No secret');
    expect(translateVaultError(own, where)).toBe(own);
  });
});
