import { EMULATOR_RESOURCE_GROUP, EMULATOR_SUBSCRIPTION_ID } from './keyVaultTypes';
import { ArmError, type Json, resourceGroupNotFound, resourceGroupId, resourceNotFound, subscriptionId } from './armCore';

/** Control-plane settings of an emulated vault, as `vaults.get` reports them. */
export interface VaultState {
  /** `properties.networkAcls.defaultAction`. */
  networkDefaultAction: 'Allow' | 'Deny';
  /** `properties.networkAcls.ipRules[].value`, e.g. `203.0.113.0/24`. */
  ipRules: string[];
  /** `properties.networkAcls.virtualNetworkRules[].id` (subnet resource ids). */
  virtualNetworkRules: string[];
  /** `properties.publicNetworkAccess`. */
  publicNetworkAccess: 'Enabled' | 'Disabled';
  /** `properties.enableSoftDelete`. */
  enableSoftDelete: boolean;
  /** `properties.softDeleteRetentionInDays`. */
  softDeleteRetentionInDays: number;
  /** `properties.enablePurgeProtection`; `false` is sent as an absent property, as ARM does. */
  enablePurgeProtection: boolean;
  /** `properties.enableRbacAuthorization`. */
  enableRbacAuthorization: boolean;
  /**
   * `properties.accessPolicies`: per object id, the permissions on secrets, keys and certificates
   * (ARM's names, e.g. `Get`, `List`, `all`; absent kinds are empty lists; storage is always empty).
   */
  accessPolicies: { objectId: string; secrets: string[]; keys?: string[]; certificates?: string[] }[];
  /** The resource's `location` (ARM region name, e.g. `westeurope`). */
  location: string;
}

// Learn: "Azure Key Vault soft-delete overview" (soft delete on, 90 days); the RBAC-mode default is unsourced (a project choice)
export const DEFAULT_VAULT_STATE: VaultState = {
  networkDefaultAction: 'Allow',
  ipRules: [],
  virtualNetworkRules: [],
  publicNetworkAccess: 'Enabled',
  enableSoftDelete: true,
  softDeleteRetentionInDays: 90,
  enablePurgeProtection: false,
  enableRbacAuthorization: true,
  accessPolicies: [],
  location: 'westeurope',
};

export interface VaultRecord {
  name: string;
  state: VaultState;
  createdAt: string;
}

/** A role assignment as the emulator keeps it. */
export interface EmulatedRoleAssignment {
  /** Assignment name (a GUID), the last segment of its id. */
  name: string;
  principalId: string;
  roleDefinitionGuid: string;
  /** Scope resource id, e.g. `/subscriptions/<sub>/resourceGroups/local`. */
  scope: string;
}

export interface RoleAssignmentRecord extends EmulatedRoleAssignment {
  principalType: string;
  description: string | null;
  createdOn: string;
  updatedOn: string;
}

/** A resource created through ARM (resource groups included), served as stored. */
export interface StoredResource {
  /** Resource id in the casing of the PUT that created it. */
  id: string;
  /** `Microsoft.Storage/storageAccounts`, `Microsoft.Storage/storageAccounts/tableServices/tables`, … */
  type: string;
  /** The JSON ARM answers for it. */
  body: Json;
}

/** A parsed, existing scope. */
export interface ResolvedScope {
  /** Canonical resource id (the stored casing). */
  id: string;
  vault: VaultRecord | undefined;
}

const RESOURCE_GROUP_TYPE = 'Microsoft.Resources/resourceGroups';
/** Service singletons that exist as soon as their storage account does. */
// Learn: "Naming rules and restrictions for Azure resources" (storageAccounts/blobServices and fileServices must be `default`)
const IMPLICIT_CHILDREN = new Set(['blobservices/default', 'tableservices/default', 'queueservices/default', 'fileservices/default']);

/** Every resource, vault and role assignment the ARM emulator knows. */
export class ArmStore {
  readonly vaults = new Map<string, VaultRecord>();
  readonly assignments: RoleAssignmentRecord[] = [];
  /** Resource providers not registered, by lower-case namespace (every other one is `Registered`). */
  readonly unregisteredProviders = new Set<string>();
  private readonly resources = new Map<string, StoredResource>();

  constructor() {
    // The vaults' resource group exists from the start, as the emulated vaults do.
    this.put({
      id: resourceGroupId(),
      type: RESOURCE_GROUP_TYPE,
      body: resourceGroupJson(resourceGroupId(), EMULATOR_RESOURCE_GROUP, 'westeurope', {}),
    });
  }

  get(id: string): StoredResource | undefined {
    return this.resources.get(id.toLowerCase());
  }

  put(resource: StoredResource): void {
    this.resources.set(resource.id.toLowerCase(), resource);
  }

  /** Every stored resource of `type` (case-insensitive), in creation order. */
  ofType(type: string): StoredResource[] {
    const lower = type.toLowerCase();
    return [...this.resources.values()].filter((r) => r.type.toLowerCase() === lower);
  }

  /** The resource group, or ARM's 404 (`SubscriptionNotFound` / `ResourceGroupNotFound`). */
  requireResourceGroup(sub: string, rg: string): StoredResource {
    requireSubscription(sub);
    const found = this.get(`${subscriptionId()}/resourceGroups/${rg}`);
    // Learn: "Troubleshoot common Azure deployment errors" (ResourceGroupNotFound)
    if (!found) throw resourceGroupNotFound(rg);
    return found;
  }

  /** Creates or updates a resource group; `true` when it was created. */
  putResourceGroup(sub: string, rg: string, location: string, tags: Json): { created: boolean; body: Json } {
    requireSubscription(sub);
    // Learn: "Naming rules and restrictions for Azure resources" (resourcegroups: 1-90, can't end with period); code and message unverified
    if (!/^[-\w._()]{1,90}$/.test(rg) || rg.endsWith('.')) {
      throw new ArmError(400, 'InvalidResourceGroupName', `The resource group name '${rg}' is invalid.`);
    }
    const existing = this.get(`${subscriptionId()}/resourceGroups/${rg}`);
    if (existing) {
      const existingLocation = String(existing.body['location']);
      // Unsourced: the code InvalidResourceGroupLocation, its 409 and message are modelled, not verified.
      if (location.toLowerCase() !== existingLocation.toLowerCase()) {
        throw new ArmError(
          409,
          'InvalidResourceGroupLocation',
          `Invalid resource group location '${location}'. The Resource group already exists in location '${existingLocation}'.`,
        );
      }
      existing.body['tags'] = tags;
      return { created: false, body: existing.body };
    }
    const id = `${subscriptionId()}/resourceGroups/${rg}`;
    const body = resourceGroupJson(id, rg, location.toLowerCase(), tags);
    this.put({ id, type: RESOURCE_GROUP_TYPE, body });
    return { created: true, body };
  }

  /**
   * Checks a scope (subscription, resource group, vault or any stored resource, the storage
   * service singletons included) level by level, with ARM's not-found codes.
   */
  resolveScope(segments: string[]): ResolvedScope {
    const [subKw, sub, rgKw, rg, provKw, ...rest] = segments;
    // Unsourced: the code InvalidScope and its message are modelled, not verified.
    const invalid = (): ArmError => new ArmError(400, 'InvalidScope', `The scope '/${segments.join('/')}' is not valid.`);
    if (subKw?.toLowerCase() !== 'subscriptions' || sub === undefined) throw invalid();
    requireSubscription(sub);
    if (rgKw === undefined) return { id: subscriptionId(), vault: undefined };
    if (rgKw.toLowerCase() !== 'resourcegroups' || rg === undefined) throw invalid();
    const group = this.requireResourceGroup(sub, rg);
    if (provKw === undefined) return { id: group.id, vault: undefined };
    const [ns, ...pairs] = rest;
    if (provKw.toLowerCase() !== 'providers' || ns === undefined || pairs.length < 2 || pairs.length % 2 !== 0) throw invalid();
    const groupName = String(group.body['name']);
    const typeName = (upTo: number): { type: string; name: string } => ({
      type: [ns, ...pairs.slice(0, upTo).filter((_, i) => i % 2 === 0)].join('/'),
      name: pairs[upTo - 1] ?? '',
    });
    if (ns.toLowerCase() === 'microsoft.keyvault' && pairs[0]?.toLowerCase() === 'vaults' && pairs.length === 2) {
      const vault =
        groupName.toLowerCase() === EMULATOR_RESOURCE_GROUP.toLowerCase() ? this.vaults.get((pairs[1] ?? '').toLowerCase()) : undefined;
      if (!vault) throw resourceNotFound(`${ns}/${pairs[0]}`, pairs[1] ?? '', rg);
      return { id: `${resourceGroupId()}/providers/Microsoft.KeyVault/vaults/${vault.name}`, vault };
    }
    // Each level must exist: the top resource, then every child (service singletons implicitly).
    let canonical = `${group.id}/providers/${ns}`;
    for (let i = 0; i < pairs.length; i += 2) {
      const candidate = `${canonical}/${pairs[i]}/${pairs[i + 1]}`;
      const stored = this.get(candidate);
      const implicit = i > 0 && IMPLICIT_CHILDREN.has(`${pairs[i]}/${pairs[i + 1]}`.toLowerCase());
      // Learn: "Troubleshoot common Azure deployment errors" (ResourceNotFound)
      if (!stored && !implicit) {
        const { type, name } = typeName(i + 2);
        throw resourceNotFound(type, name, rg);
      }
      canonical = stored ? stored.id : candidate;
    }
    return { id: canonical, vault: undefined };
  }

  /** Whether the scope exists (see {@link resolveScope}). */
  scopeExists(id: string): boolean {
    try {
      this.resolveScope(id.split('/').filter((s) => s !== ''));
      return true;
    } catch {
      return false;
    }
  }
}

// Learn: "Troubleshoot common Azure deployment errors" (SubscriptionNotFound); status and message not verified
export function requireSubscription(sub: string): void {
  if (sub.toLowerCase() !== EMULATOR_SUBSCRIPTION_ID) {
    throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${sub}' could not be found.`);
  }
}

// REST spec: azure-rest-api-specs .../Microsoft.Resources/stable/2021-04-01/examples/CreateResourceGroup.json
function resourceGroupJson(id: string, name: string, location: string, tags: Json): Json {
  return { id, name, type: RESOURCE_GROUP_TYPE, location, tags, properties: { provisioningState: 'Succeeded' } };
}

export function mergeVaultState(base: VaultState, patch: Partial<VaultState>): VaultState {
  const next = { ...base };
  for (const [k, v] of Object.entries(patch) as Array<[keyof VaultState, unknown]>) {
    if (v === undefined) continue;
    if (!(k in DEFAULT_VAULT_STATE)) throw new Error(`Unknown vault setting: ${String(k)}`);
    (next as Record<string, unknown>)[k] = v;
  }
  // Learn: "Azure Key Vault soft-delete overview" (retention 7 to 90 days)
  if (next.softDeleteRetentionInDays < 7 || next.softDeleteRetentionInDays > 90 || !Number.isInteger(next.softDeleteRetentionInDays)) {
    throw new Error(`softDeleteRetentionInDays must be an integer from 7 to 90, got ${next.softDeleteRetentionInDays}`);
  }
  return cloneVaultState(next);
}

/** Deep copy, so callers mutating arrays they passed in (or got back) cannot change the served state. */
export function cloneVaultState(s: VaultState): VaultState {
  return {
    ...s,
    ipRules: [...s.ipRules],
    virtualNetworkRules: [...s.virtualNetworkRules],
    accessPolicies: s.accessPolicies.map((p) => ({
      objectId: p.objectId,
      secrets: [...p.secrets],
      keys: [...(p.keys ?? [])],
      certificates: [...(p.certificates ?? [])],
    })),
  };
}
