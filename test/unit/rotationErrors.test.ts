import { RestError } from '@azure/core-rest-pipeline';
import { GraphError } from '../../shared/graph/graphClient';
import { BrokerRefusal, failureOf, vaultCall, VaultStepError } from '../../shared/rotation/rotationErrors';

const AT = new Date('2026-03-01T10:00:00.000Z');
const RECORD = { applicationObjectId: 'app-1' };

describe('failureOf', () => {
  it('keeps Graph’s code, status and message, with a remedy', () => {
    const err = new GraphError('addPassword', 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    expect(failureOf(err, 'newPassword', RECORD, 'started', AT)).toEqual({
      step: 'newPassword',
      resumeState: 'started',
      service: 'graph',
      code: 'Authorization_RequestDenied',
      status: 403,
      message: 'Insufficient privileges to complete the operation.',
      remedy: expect.stringContaining('Application.ReadWrite.OwnedBy'),
      at: AT.toISOString(),
    });
  });

  it('has no status for a Graph call that got no answer', () => {
    expect(
      failureOf(new GraphError('getApplication', 0, 'ECONNRESET', 'The request did not complete.'), 'newPassword', RECORD, 'started', AT),
    ).not.toHaveProperty('status');
  });

  it('keeps Key Vault’s code and the first line of its message', async () => {
    const err = await vaultCall(() =>
      Promise.reject(new RestError('Caller is not authorized.\nmore', { code: 'Forbidden', statusCode: 403 })),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultStepError);
    expect(failureOf(err, 'disableOldVersion', RECORD, 'passwordRemoved', AT)).toMatchObject({
      service: 'keyVault',
      code: 'Forbidden',
      status: 403,
      message: 'Caller is not authorized.',
      resumeState: 'passwordRemoved',
    });
  });

  it('never carries the secret text a refused write held', async () => {
    const text = 'Sup3r~secret.text_value';
    const err = await vaultCall(
      () => Promise.reject(new RestError(`bad value ${text}`, { code: 'BadParameter', statusCode: 400 })),
      text,
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe('Key Vault refused the request.');
    expect(JSON.stringify(failureOf(err, 'newPassword', RECORD, 'passwordAdded', AT))).not.toContain(text);
  });

  it('tells the broker’s own refusals', () => {
    expect(failureOf(new BrokerRefusal('TooManyPasswords', 'two already'), 'newPassword', RECORD, 'started', AT)).toMatchObject({
      service: 'broker',
      code: 'TooManyPasswords',
      message: 'two already',
    });
  });

  it('leaves anything else to be rethrown', async () => {
    expect(failureOf(new Error('storage down'), 'announce', RECORD, 'stored', AT)).toBeUndefined();
    const plain = new TypeError('boom');
    await expect(vaultCall(() => Promise.reject(plain))).rejects.toBe(plain);
  });

  it("records the rotation identity's missing token as a Key Vault step failure, without the credential's message", async () => {
    const noToken = Object.assign(new Error('ManagedIdentityCredential: no endpoint at http://169.254.169.254'), {
      name: 'CredentialUnavailableError',
    });
    const err = await vaultCall(() => Promise.reject(noToken)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultStepError);
    expect(failureOf(err, 'newPassword', RECORD, 'started', AT)).toMatchObject({
      service: 'keyVault',
      code: 'CredentialUnavailableError',
      message: 'No token for Key Vault.',
    });
  });
});
