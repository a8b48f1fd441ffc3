import { createHttpHeaders, createPipelineRequest, RestError } from '@azure/core-rest-pipeline';
import { identityDiff, type AppIdentity } from '../../cli/deploy/infrastructure';
import { DeployError, step } from '../../cli/deploy/reconcile';

/** Azure's 400 for a settings PUT whose message quotes a value it was sent (as ARM's content errors can). */
function quotingError(value: string): RestError {
  const request = createPipelineRequest({ url: 'https://management.azure.com/x' });
  const bodyAsText = JSON.stringify({
    error: { code: 'InvalidRequestContent', message: `The value '${value}' of CONSUMERS is not valid.` },
  });
  return new RestError(bodyAsText, {
    statusCode: 400,
    request,
    response: { status: 400, headers: createHttpHeaders(), request, bodyAsText },
  });
}

describe('step', () => {
  it("names the resource and Azure's answer, with the values it was told to keep out replaced", async () => {
    const webhook = 'https://hooks.example.com/notify?sig=AbCdEf0123456789';
    const failed = step('app settings of contoso-broker', 'update', () => Promise.reject(quotingError(webhook)), ['short', webhook]);
    await expect(failed).rejects.toThrow(
      new DeployError(
        'app settings of contoso-broker',
        "update failed: 400 InvalidRequestContent: The value '<redacted>' of CONSUMERS is not valid.",
      ),
    );
  });

  it('passes its own DeployError through untouched', async () => {
    const own = new DeployError('vault v', 'read failed: 404');
    await expect(step('other', 'read', () => Promise.reject(own))).rejects.toBe(own);
  });
});

describe('identityDiff', () => {
  const named: AppIdentity = {
    id: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/broker-id',
    name: 'broker-id',
    principalId: 'p',
    clientId: 'c',
  };
  const other = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/other';

  it('takes the named identity in any casing as it is', () => {
    expect(identityDiff({ type: 'UserAssigned', userAssignedIdentities: { [named.id.toUpperCase()]: {} } }, named)).toEqual([]);
    expect(identityDiff({ type: 'SystemAssigned' }, undefined)).toEqual([]);
  });

  it('wants exactly the named one: another attached by hand goes, and so does a system identity', () => {
    expect(identityDiff({ type: 'UserAssigned', userAssignedIdentities: { [named.id]: {}, [other]: {} } }, named)).toEqual([
      { path: 'identity.userAssignedIdentities', from: [named.id, other], to: [named.id] },
    ]);
    expect(identityDiff({ type: 'SystemAssigned, UserAssigned', userAssignedIdentities: { [named.id]: {} } }, named)).toEqual([
      { path: 'identity.type', from: 'SystemAssigned, UserAssigned', to: 'UserAssigned' },
    ]);
    expect(identityDiff({ type: 'SystemAssigned, UserAssigned', userAssignedIdentities: { [other]: {} } }, undefined)).toEqual([
      { path: 'identity.type', from: 'SystemAssigned, UserAssigned', to: 'SystemAssigned' },
      { path: 'identity.userAssignedIdentities', from: [other], to: [] },
    ]);
  });
});
