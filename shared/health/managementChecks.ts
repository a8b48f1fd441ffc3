import type { TokenCredential } from '@azure/identity';
import type { ReaderPermission, VaultSettings } from '../config';
import type { HealthCause, HealthCheckName, HealthCheckResult, HealthStatus } from './healthReport';
import { remedyFor } from './remedies';

/** Built-in role definition GUIDs (Azure docs, "Azure built-in roles", Security). */
const ROLE = {
  keyVaultAdministrator: '00482a5a-887f-4fb3-b363-3b7fe8e74483',
  keyVaultReader: '21090545-7ca7-4776-b22c-e363652d74d2',
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6',
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424',
  keyVaultCryptoOfficer: '14b46e9e-c2b7-41b4-b07b-48a6ebf60603',
  keyVaultCertificateUser: 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba',
  keyVaultCertificatesOfficer: 'a4417e6f-fecd-4de8-b567-7b0420556985',
} as const;

/**
 * The built-in roles that give a principal read on each kind of object of an RBAC vault, at the
 * vault's scope or above.
 *
 * - `secrets` means reading secret values (`secrets/getSecret/action`): **Key Vault Secrets User**,
 *   Secrets Officer or Administrator. **Key Vault Reader** is not enough: it reads secret metadata only.
 * - `keys` and `certificates` mean reading those objects (`keys/read`, `certificates/read`), which
 *   **Key Vault Reader** grants for both, as do the broader Crypto User / Crypto Officer (keys),
 *   Certificate User / Certificates Officer (certificates) and Administrator.
 *
 * So Customer Insights' documented RBAC requirement, "Key Vault Reader and Key Vault Secrets User",
 * is exactly `permissions: ["secrets", "keys", "certificates"]`.
 */
export const READER_ROLE_IDS: Readonly<Record<ReaderPermission, ReadonlySet<string>>> = {
  secrets: new Set([ROLE.keyVaultSecretsUser, ROLE.keyVaultSecretsOfficer, ROLE.keyVaultAdministrator]),
  keys: new Set([ROLE.keyVaultReader, ROLE.keyVaultCryptoUser, ROLE.keyVaultCryptoOfficer, ROLE.keyVaultAdministrator]),
  certificates: new Set([ROLE.keyVaultReader, ROLE.keyVaultCertificateUser, ROLE.keyVaultCertificatesOfficer, ROLE.keyVaultAdministrator]),
};

/** An access policy entry of a vault, with its permission lists per kind (ARM's names, any case). */
export interface VaultAccessPolicy {
  readonly objectId: string;
  readonly secrets: readonly string[];
  readonly keys: readonly string[];
  readonly certificates: readonly string[];
}

/** What the checks read of a vault's ARM resource. */
export interface VaultResource {
  readonly networkDefaultAction: string | undefined;
  readonly ipRules: number;
  readonly virtualNetworkRules: number;
  readonly publicNetworkAccess: string | undefined;
  readonly enableSoftDelete: boolean | undefined;
  readonly softDeleteRetentionInDays: number | undefined;
  readonly enablePurgeProtection: boolean | undefined;
  readonly enableRbacAuthorization: boolean | undefined;
  readonly accessPolicies: readonly VaultAccessPolicy[];
  /** The vault resource's `location`, e.g. `westeurope`. */
  readonly location: string | undefined;
}

/** The management-plane reads, narrowed to what the checks need. */
export interface ManagementReader {
  getVault(resourceId: string, signal: AbortSignal): Promise<VaultResource>;
  /** Role definition GUIDs assigned to the principal at the vault's scope or above. */
  roleIdsOf(resourceId: string, principalId: string, signal: AbortSignal): Promise<string[]>;
}

/**
 * The real reader: `@azure/arm-keyvault` for the vault, `@azure/arm-authorization` for role
 * assignments, both with the app's credential; loaded and built on first use, one client per
 * subscription.
 */
export function createArmManagementReader(credential: TokenCredential): ManagementReader {
  const vaultClients = new Map<string, import('@azure/arm-keyvault').KeyVaultManagementClient>();
  const authClients = new Map<string, import('@azure/arm-authorization').AuthorizationManagementClient>();
  return {
    async getVault(resourceId, signal) {
      const { subscription, resourceGroup, name } = parseResourceId(resourceId);
      let client = vaultClients.get(subscription);
      if (!client) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
        const { KeyVaultManagementClient } = require('@azure/arm-keyvault') as typeof import('@azure/arm-keyvault');
        client = new KeyVaultManagementClient(credential, subscription, { retryOptions: { maxRetries: 1 } });
        vaultClients.set(subscription, client);
      }
      const vault = await client.vaults.get(resourceGroup, name, { abortSignal: signal });
      const p = vault.properties;
      return {
        networkDefaultAction: p.networkAcls?.defaultAction,
        ipRules: p.networkAcls?.ipRules?.length ?? 0,
        virtualNetworkRules: p.networkAcls?.virtualNetworkRules?.length ?? 0,
        publicNetworkAccess: p.publicNetworkAccess,
        enableSoftDelete: p.enableSoftDelete,
        softDeleteRetentionInDays: p.softDeleteRetentionInDays,
        enablePurgeProtection: p.enablePurgeProtection,
        enableRbacAuthorization: p.enableRbacAuthorization,
        accessPolicies: (p.accessPolicies ?? []).map((a) => ({
          objectId: a.objectId,
          secrets: (a.permissions.secrets ?? []).map(String),
          keys: (a.permissions.keys ?? []).map(String),
          certificates: (a.permissions.certificates ?? []).map(String),
        })),
        location: vault.location,
      };
    },
    async roleIdsOf(resourceId, principalId, signal) {
      const { subscription } = parseResourceId(resourceId);
      let client = authClients.get(subscription);
      if (!client) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
        const { AuthorizationManagementClient } = require('@azure/arm-authorization') as typeof import('@azure/arm-authorization');
        client = new AuthorizationManagementClient(credential, subscription, { retryOptions: { maxRetries: 1 } });
        authClients.set(subscription, client);
      }
      const ids: string[] = [];
      for await (const assignment of client.roleAssignments.listForScope(resourceId, {
        filter: `principalId eq '${principalId}'`,
        abortSignal: signal,
      })) {
        const id = assignment.roleDefinitionId?.split('/').pop();
        if (id) ids.push(id.toLowerCase());
      }
      return ids;
    },
  };
}

/**
 * Management-plane checks of one vault: firewall and public network access against what
 * VAULT_EXPECTATIONS declares, soft delete and purge protection, the region (only where an
 * expectation names one), and whether each declared reader still holds read on each kind it needs
 * (see {@link READER_ROLE_IDS}; on an access-policy vault Get and List, or All, in that kind's list).
 * Without a resource id every one of them is `skipped`, never `ok`.
 */
export async function managementChecks(
  vault: VaultSettings,
  reader: ManagementReader | undefined,
  timeoutMs: number,
): Promise<HealthCheckResult[]> {
  const readers = vault.expectations.readers;
  const names: { check: HealthCheckName; target: string | null }[] = [
    { check: 'firewall', target: null },
    { check: 'publicNetworkAccess', target: null },
    { check: 'softDelete', target: null },
    { check: 'purgeProtection', target: null },
    ...(vault.expectations.location === undefined ? [] : [{ check: 'location' as const, target: null }]),
    ...readers.map((r) => ({ check: 'reader' as const, target: `${r.name} (${r.principalId})` })),
  ];
  if (!vault.resourceId || !reader) {
    return names.map(({ check, target }) => ({
      check,
      target,
      status: 'skipped',
      cause: null,
      remedy: 'Set KEY_VAULT_RESOURCE_IDS to check this.',
      durationMs: 0,
    }));
  }
  const started = performance.now();
  let resource: VaultResource;
  try {
    resource = await reader.getVault(vault.resourceId, AbortSignal.timeout(timeoutMs));
  } catch {
    const ms = Math.round(performance.now() - started);
    return names.map(({ check, target }) => ({ ...result(vault, check, target, 'warning', 'ManagementUnavailable'), durationMs: ms }));
  }
  const ms = Math.round(performance.now() - started);
  const out: HealthCheckResult[] = [];

  const firewallOn = resource.networkDefaultAction?.toLowerCase() === 'deny';
  const expected = vault.expectations.firewall;
  const firewallTarget = `expected ${expected}, is ${firewallOn ? 'on' : 'off'} (${resource.ipRules} IP rule(s), ${resource.virtualNetworkRules} VNet rule(s))`;
  if (expected === 'any' || (expected === 'on') === firewallOn) {
    out.push({ check: 'firewall', target: firewallTarget, status: 'ok', cause: null, remedy: null, durationMs: ms });
  } else {
    // Firewall on where integrations need it off breaks them; off where a baseline wants it on does not.
    out.push({
      ...result(vault, 'firewall', firewallTarget, expected === 'off' ? 'failed' : 'warning', 'FirewallNotAsExpected'),
      durationMs: ms,
    });
  }

  const publicDisabled = resource.publicNetworkAccess?.toLowerCase() === 'disabled';
  out.push(
    publicDisabled && expected === 'off'
      ? { ...result(vault, 'publicNetworkAccess', 'Disabled', 'failed', 'PublicAccessNotAsExpected'), durationMs: ms }
      : {
          check: 'publicNetworkAccess',
          target: publicDisabled ? 'Disabled' : 'Enabled',
          status: 'ok',
          cause: null,
          remedy: null,
          durationMs: ms,
        },
  );
  out.push(
    resource.enableSoftDelete === false
      ? { ...result(vault, 'softDelete', null, 'warning', 'SoftDeleteOff'), durationMs: ms }
      : {
          check: 'softDelete',
          target: `${resource.softDeleteRetentionInDays ?? 90} days retention`,
          status: 'ok',
          cause: null,
          remedy: null,
          durationMs: ms,
        },
  );
  out.push(
    resource.enablePurgeProtection === true
      ? { check: 'purgeProtection', target: null, status: 'ok', cause: null, remedy: null, durationMs: ms }
      : { ...result(vault, 'purgeProtection', null, 'warning', 'PurgeProtectionOff'), durationMs: ms },
  );

  const expectedLocation = vault.expectations.location;
  if (expectedLocation !== undefined) {
    const target = `expected ${expectedLocation}, is ${resource.location ?? 'unknown'}`;
    out.push(
      resource.location !== undefined && sameRegion(resource.location, expectedLocation)
        ? { check: 'location', target, status: 'ok', cause: null, remedy: null, durationMs: ms }
        : { ...result(vault, 'location', target, 'failed', 'LocationNotAsExpected'), durationMs: ms },
    );
  }

  for (const expectedReader of readers) {
    const target = `${expectedReader.name} (${expectedReader.principalId})`;
    const readerStarted = performance.now();
    let missing: ReaderPermission[];
    try {
      if (resource.enableRbacAuthorization) {
        const roles = await reader.roleIdsOf(vault.resourceId, expectedReader.principalId, AbortSignal.timeout(timeoutMs));
        missing = expectedReader.permissions.filter((kind) => !roles.some((id) => READER_ROLE_IDS[kind].has(id.toLowerCase())));
      } else {
        const policy = resource.accessPolicies.find((a) => a.objectId.toLowerCase() === expectedReader.principalId.toLowerCase());
        missing = expectedReader.permissions.filter((kind) => {
          const granted = new Set((policy?.[kind] ?? []).map((p) => p.toLowerCase()));
          return !(granted.has('all') || (granted.has('get') && granted.has('list')));
        });
      }
    } catch {
      out.push({
        ...result(vault, 'reader', target, 'warning', 'ManagementUnavailable'),
        durationMs: Math.round(performance.now() - readerStarted),
      });
      continue;
    }
    const durationMs = Math.round(performance.now() - readerStarted);
    out.push(
      missing.length === 0
        ? { check: 'reader', target, status: 'ok', cause: null, remedy: null, durationMs }
        : // The target names the kinds it can no longer read, so the remedy says what to grant.
          { ...result(vault, 'reader', `${target}: ${missing.join(', ')}`, 'failed', 'ReaderPermissionMissing'), durationMs },
    );
  }
  return out;
}

function result(
  vault: VaultSettings,
  check: HealthCheckName,
  target: string | null,
  status: HealthStatus,
  cause: HealthCause,
): HealthCheckResult {
  return { check, target, status, cause, remedy: remedyFor(cause, vault.alias, target), durationMs: 0 };
}

/** ARM's region names ignore case and spaces: "West Europe" is `westeurope`. */
function sameRegion(a: string, b: string): boolean {
  const norm = (region: string): string => region.replace(/\s+/g, '').toLowerCase();
  return norm(a) === norm(b);
}

function parseResourceId(id: string): { subscription: string; resourceGroup: string; name: string } {
  const match = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)$/i.exec(id);
  if (!match?.[1] || !match[2] || !match[3]) throw new Error('not a vault resource id');
  return { subscription: match[1], resourceGroup: match[2], name: match[3] };
}
