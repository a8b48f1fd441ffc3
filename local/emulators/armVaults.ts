import { EMULATOR_TENANT_ID } from './managedIdentityEndpoint';
import {
  ArmError,
  type ArmAnswer,
  type ArmRequest,
  type Json,
  isJson,
  methodNotAllowed,
  objectAt,
  resourceGroupId,
  stringAt,
} from './armCore';
import type { VaultRecord, VaultState } from './armStore';

export function vaultResourceId(name: string): string {
  return `${resourceGroupId()}/providers/Microsoft.KeyVault/vaults/${name.toLowerCase()}`;
}

/** `vaults.get`: the vault's control-plane JSON. */
// REST spec: azure-rest-api-specs .../Microsoft.KeyVault/stable/2022-07-01/keyvault.json (Vault, VaultProperties: vaultUri, tenantId, accessPolicies, networkAcls)
export function vaultJson(v: VaultRecord): Json {
  const s = v.state;
  const properties: Json = {
    sku: { family: 'A', name: 'standard' },
    tenantId: EMULATOR_TENANT_ID,
    networkAcls: {
      bypass: 'AzureServices',
      defaultAction: s.networkDefaultAction,
      ipRules: s.ipRules.map((value) => ({ value })),
      virtualNetworkRules: s.virtualNetworkRules.map((id) => ({ id, ignoreMissingVnetServiceEndpoint: false })),
    },
    accessPolicies: s.accessPolicies.map((p) => ({
      tenantId: EMULATOR_TENANT_ID,
      objectId: p.objectId,
      permissions: { keys: [...(p.keys ?? [])], secrets: [...p.secrets], certificates: [...(p.certificates ?? [])], storage: [] },
    })),
    enabledForDeployment: false,
    enabledForDiskEncryption: false,
    enabledForTemplateDeployment: false,
    enableSoftDelete: s.enableSoftDelete,
    softDeleteRetentionInDays: s.softDeleteRetentionInDays,
    enableRbacAuthorization: s.enableRbacAuthorization,
    vaultUri: `https://${v.name}.vault.azure.net/`,
    provisioningState: 'Succeeded',
    publicNetworkAccess: s.publicNetworkAccess,
  };
  // Learn: "Azure Key Vault soft-delete overview" (purge protection can't be turned off); the omission when never set is unverified
  // Purge protection cannot be switched off once on, and ARM omits the property on vaults that never had it.
  if (s.enablePurgeProtection) properties['enablePurgeProtection'] = true;
  return {
    id: vaultResourceId(v.name),
    name: v.name,
    type: 'Microsoft.KeyVault/vaults',
    location: s.location,
    tags: {},
    systemData: {
      createdBy: EMULATOR_TENANT_ID,
      createdByType: 'Application',
      createdAt: v.createdAt,
      lastModifiedBy: EMULATOR_TENANT_ID,
      lastModifiedByType: 'Application',
      lastModifiedAt: v.createdAt,
    },
    properties,
  };
}

type PermissionKind = 'secrets' | 'keys' | 'certificates';
const KINDS: PermissionKind[] = ['secrets', 'keys', 'certificates'];

/**
 * `vaults.updateAccessPolicy`: PUT `.../vaults/{v}/accessPolicies/{add|replace|remove}` with
 * `{properties:{accessPolicies:[{tenantId, objectId, permissions}]}}`. `add` merges the permissions
 * into the object id's policy (names compared case-insensitively, the first spelling kept),
 * `replace` replaces them, `remove` takes them away (and the policy once it has none).
 */
// REST spec: azure-rest-api-specs .../Microsoft.KeyVault/stable/2022-07-01/keyvault.json Vaults_UpdateAccessPolicy (operationKind add|replace|remove; 200 or 201)
export function accessPolicyRoute(vault: VaultRecord, req: ArmRequest, operationKind: string): ArmAnswer {
  if (req.method !== 'PUT') throw methodNotAllowed(req);
  const kind = operationKind.toLowerCase();
  // Unsourced: the REST spec allows only add|replace|remove; this code and message are not verified.
  if (kind !== 'add' && kind !== 'replace' && kind !== 'remove') {
    throw new ArmError(400, 'BadRequest', `The access policy update kind '${operationKind}' is not valid; use add, replace or remove.`);
  }
  const props = objectAt(req.body, 'properties');
  const policies = props['accessPolicies'];
  // Unsourced: modelled from the spec's required accessPolicies; code and message not verified.
  if (!Array.isArray(policies) || policies.length === 0) {
    throw new ArmError(400, 'BadRequest', 'The parameter accessPolicies is required and must contain at least one access policy.');
  }
  const next: VaultState['accessPolicies'] = vault.state.accessPolicies.map((p) => ({
    objectId: p.objectId,
    secrets: [...p.secrets],
    keys: [...(p.keys ?? [])],
    certificates: [...(p.certificates ?? [])],
  }));
  for (const entry of policies) {
    const objectId = stringAt(entry, 'objectId');
    const tenantId = stringAt(entry, 'tenantId');
    // Unsourced: the REST spec requires tenantId and objectId; code and message not verified.
    if (!objectId || !tenantId) throw new ArmError(400, 'BadRequest', 'Every access policy needs a tenantId and an objectId.');
    const permissions = objectAt(entry, 'permissions');
    let policy = next.find((p) => p.objectId.toLowerCase() === objectId.toLowerCase());
    if (!policy) {
      if (kind === 'remove') continue;
      policy = { objectId, secrets: [], keys: [], certificates: [] };
      next.push(policy);
    }
    for (const k of KINDS) {
      const given = stringList(permissions[k]);
      const current = policy[k] ?? [];
      if (kind === 'replace') policy[k] = given;
      else if (kind === 'add') policy[k] = [...current, ...given.filter((g) => !current.some((c) => c.toLowerCase() === g.toLowerCase()))];
      else policy[k] = current.filter((c) => !given.some((g) => g.toLowerCase() === c.toLowerCase()));
    }
  }
  vault.state.accessPolicies = next.filter((p) => kind !== 'remove' || KINDS.some((k) => (p[k] ?? []).length > 0));
  return {
    status: 201,
    body: {
      id: `${vaultResourceId(vault.name)}/accessPolicies/${kind}`,
      name: kind,
      type: 'Microsoft.KeyVault/vaults/accessPolicies',
      location: vault.state.location,
      properties: { accessPolicies: policies.filter(isJson) },
    },
  };
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
