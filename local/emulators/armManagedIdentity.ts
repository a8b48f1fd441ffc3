/**
 * Microsoft.ManagedIdentity user-assigned identities (`resources.getById` / a PUT): the identity a
 * deployment file may give the app. Each new one is also served by the managed-identity endpoint
 * (tokens by its client id), as Azure makes it usable by whatever resource it is assigned to.
 */
import { type Json, guidFrom, stringAt } from './armCore';
import { type ResourceKind, tagsOf } from './armResources';
import { EMULATOR_TENANT_ID } from './managedIdentityEndpoint';

export const USER_ASSIGNED_IDENTITY_TYPE = 'Microsoft.ManagedIdentity/userAssignedIdentities';

// REST spec: specification/msi, UserAssignedIdentities_CreateOrUpdate (examples/IdentityCreate.json):
// synchronous, 201 on create, 200 on update; tenantId, principalId and clientId assigned by Azure.
// REST spec: ManagedIdentity.json (2023-01-31) Identity is a TrackedResource (location required: the
// generic 400 LocationRequired) whose UserAssignedIdentityProperties are all readOnly: values a caller
// sends are ignored, not refused, and an update keeps the assigned ids.
export const userAssignedIdentityKind: ResourceKind = {
  type: USER_ASSIGNED_IDENTITY_TYPE,
  tracked: true,
  lro: 'none',
  createStatus: 201,
  provisioningState: false,
  build(ctx) {
    const previous = (ctx.existing?.['properties'] ?? {}) as Json;
    return {
      id: ctx.id,
      name: ctx.name,
      type: USER_ASSIGNED_IDENTITY_TYPE,
      location: String(ctx.body['location']).replace(/\s+/g, '').toLowerCase(),
      tags: tagsOf(ctx),
      properties: {
        tenantId: EMULATOR_TENANT_ID,
        principalId: stringAt(previous, 'principalId') ?? guidFrom(`uai-principal:${ctx.id.toLowerCase()}`),
        clientId: stringAt(previous, 'clientId') ?? guidFrom(`uai-client:${ctx.id.toLowerCase()}`),
      },
    };
  },
  stored(ctx, body) {
    const props = body['properties'] as Json;
    ctx.world.userAssignedIdentityCreated?.(String(props['clientId']), String(props['principalId']));
  },
};
