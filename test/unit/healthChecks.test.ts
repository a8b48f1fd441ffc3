import { loadConfig } from '../../shared/config';
import type { VaultSettings } from '../../shared/config';
import { worstStatus } from '../../shared/health/healthReport';
import type { ManagementReader, VaultResource } from '../../shared/health/managementChecks';
import { managementChecks } from '../../shared/health/managementChecks';
import { referencedSecrets } from '../../shared/health/runHealthCheck';

const PRINCIPAL = '0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff';
const RESOURCE_ID = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso';

const vault = (firewall: 'on' | 'off' | 'any', resourceId: string | null = RESOURCE_ID): VaultSettings => ({
  alias: 'default',
  uri: 'https://contoso.vault.azure.net/',
  resourceId: resourceId ?? undefined,
  expectations: { firewall, readers: [{ name: 'Customer Insights', principalId: PRINCIPAL }] },
});

const resource = (patch: Partial<VaultResource> = {}): VaultResource => ({
  networkDefaultAction: 'Allow',
  ipRules: 0,
  virtualNetworkRules: 0,
  publicNetworkAccess: 'Enabled',
  enableSoftDelete: true,
  softDeleteRetentionInDays: 90,
  enablePurgeProtection: true,
  enableRbacAuthorization: true,
  accessPolicies: [],
  ...patch,
});

const reader = (r: VaultResource, roles: string[] = ['4633458b-17de-408a-b874-0445c86b69e6']): ManagementReader => ({
  getVault: () => Promise.resolve(r),
  roleIdsOf: () => Promise.resolve(roles),
});

const statusOf = async (v: VaultSettings, m: ManagementReader | undefined) =>
  Object.fromEntries((await managementChecks(v, m, 1000)).map((c) => [c.check, `${c.status}${c.cause ? `:${c.cause}` : ''}`]));

describe('managementChecks', () => {
  it.each([
    ['off', 'Allow', 'ok'],
    ['off', 'Deny', 'failed:FirewallNotAsExpected'],
    ['on', 'Deny', 'ok'],
    ['on', 'Allow', 'warning:FirewallNotAsExpected'],
    ['any', 'Deny', 'ok'],
  ] as const)('with the firewall expected %s and the default action %s reports %s', async (expected, action, status) => {
    expect((await statusOf(vault(expected), reader(resource({ networkDefaultAction: action })))).firewall).toBe(status);
  });

  it('warns about soft delete and purge protection off, and fails public access disabled where it must be on', async () => {
    const checks = await statusOf(
      vault('off'),
      reader(resource({ enableSoftDelete: false, enablePurgeProtection: false, publicNetworkAccess: 'Disabled' })),
    );
    expect(checks).toMatchObject({
      softDelete: 'warning:SoftDeleteOff',
      purgeProtection: 'warning:PurgeProtectionOff',
      publicNetworkAccess: 'failed:PublicAccessNotAsExpected',
    });
  });

  it.each([
    ['an RBAC vault, role held', resource(), ['4633458b-17de-408a-b874-0445c86b69e6'], 'ok'],
    ['an RBAC vault, only an unrelated role', resource(), ['acdd72a7-3385-48ef-bd42-f606fba81ae7'], 'failed:ReaderPermissionMissing'],
    [
      'an access-policy vault with Get and List',
      resource({ enableRbacAuthorization: false, accessPolicies: [{ objectId: PRINCIPAL.toUpperCase(), secrets: ['Get', 'List'] }] }),
      [],
      'ok',
    ],
    [
      'an access-policy vault with Get only',
      resource({ enableRbacAuthorization: false, accessPolicies: [{ objectId: PRINCIPAL, secrets: ['get'] }] }),
      [],
      'failed:ReaderPermissionMissing',
    ],
  ])('checks the declared reader on %s', async (_label, r, roles, status) => {
    expect((await statusOf(vault('any'), reader(r, roles))).reader).toBe(status);
  });

  it('reports every management check skipped, never ok, without a resource id', async () => {
    const checks = await managementChecks(vault('off', null), reader(resource()), 1000);
    expect(checks.map((c) => c.status)).toEqual(['skipped', 'skipped', 'skipped', 'skipped', 'skipped']);
  });

  it('reports ManagementUnavailable when ARM cannot be read', async () => {
    const failing: ManagementReader = { getVault: () => Promise.reject(new Error('403')), roleIdsOf: () => Promise.resolve([]) };
    const checks = await managementChecks(vault('off'), failing, 1000);
    expect(new Set(checks.map((c) => `${c.status}:${c.cause}`))).toEqual(new Set(['warning:ManagementUnavailable']));
  });
});

describe('referencedSecrets', () => {
  it('collects literal names of the policy and the consumers per vault, once each, ignoring globs', () => {
    const config = loadConfig({
      KEY_VAULT_URI: 'https://contoso.vault.azure.net/',
      KEY_VAULT_ALIASES: 'partner=https://partner.vault.azure.net/',
      ACCESS_POLICY: JSON.stringify({
        callers: [
          {
            name: 'a',
            identities: [{ appId: '11111111-1111-1111-1111-111111111111' }],
            allow: ['erp-*', 'erp-token', 'ERP-TOKEN', 'partner/sftp-password', 'unknown/x'],
          },
        ],
      }),
      CONSUMERS: JSON.stringify([
        {
          name: 'erp',
          secrets: ['crm-key', 'partner/*'],
          events: ['SecretNewVersionCreated'],
          webhook: 'https://erp.example/h',
          signingSecret: 'whsec-erp',
        },
      ]),
    });
    expect(Object.fromEntries(referencedSecrets(config))).toEqual({
      default: ['crm-key', 'erp-token', 'whsec-erp'],
      partner: ['sftp-password'],
    });
  });
});

describe('worstStatus', () => {
  it.each([
    [[], 'ok'],
    [['skipped', 'skipped'], 'ok'],
    [['ok', 'warning', 'skipped'], 'warning'],
    [['warning', 'failed', 'ok'], 'failed'],
  ] as const)('of %j is %s', (statuses, expected) => {
    expect(worstStatus(statuses)).toBe(expected);
  });
});
