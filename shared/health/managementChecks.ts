import type { TokenCredential } from '@azure/identity';
import type { VaultSettings } from '../config';
import type { HealthCause, HealthCheckName, HealthCheckResult, HealthStatus } from './healthReport';
import { remedyFor } from './remedies';

/** Roles that let a principal read secrets (RBAC vaults). Key Vault Reader is accepted as the issue asks. */
export const READER_ROLE_IDS: ReadonlySet<string> = new Set([
  '4633458b-17de-408a-b874-0445c86b69e6', // Key Vault Secrets User
  '21090545-7ca7-4776-b22c-e363652d74d2', // Key Vault Reader
  'b86a8fe4-44ce-4948-aee5-eccb2c155cd7', // Key Vault Secrets Officer
  '00482a5a-887f-4fb3-b363-3b7fe8e74483', // Key Vault Administrator
]);

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
  readonly accessPolicies: readonly { objectId: string; secrets: readonly string[] }[];
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
        accessPolicies: (p.accessPolicies ?? []).map((a) => ({ objectId: a.objectId, secrets: (a.permissions.secrets ?? []).map(String) })),
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
 * VAULT_EXPECTATIONS declares, soft delete and purge protection, and whether each declared reader
 * still holds read permission. Without a resource id every one of them is `skipped`, never `ok`.
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

  for (const expectedReader of readers) {
    const target = `${expectedReader.name} (${expectedReader.principalId})`;
    const readerStarted = performance.now();
    let holds: boolean;
    try {
      if (resource.enableRbacAuthorization) {
        const roles = await reader.roleIdsOf(vault.resourceId, expectedReader.principalId, AbortSignal.timeout(timeoutMs));
        holds = roles.some((id) => READER_ROLE_IDS.has(id));
      } else {
        const policy = resource.accessPolicies.find((a) => a.objectId.toLowerCase() === expectedReader.principalId.toLowerCase());
        const secrets = new Set((policy?.secrets ?? []).map((s) => s.toLowerCase()));
        holds = secrets.has('all') || (secrets.has('get') && secrets.has('list'));
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
      holds
        ? { check: 'reader', target, status: 'ok', cause: null, remedy: null, durationMs }
        : { ...result(vault, 'reader', target, 'failed', 'ReaderPermissionMissing'), durationMs },
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

function parseResourceId(id: string): { subscription: string; resourceGroup: string; name: string } {
  const match = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)$/i.exec(id);
  if (!match?.[1] || !match[2] || !match[3]) throw new Error('not a vault resource id');
  return { subscription: match[1], resourceGroup: match[2], name: match[3] };
}
