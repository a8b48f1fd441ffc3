import { loadConfig } from '../../shared/config';
import type { ReaderPermission, VaultSettings } from '../../shared/config';
import { worstStatus } from '../../shared/health/healthReport';
import type { ManagementReader, VaultResource } from '../../shared/health/managementChecks';
import { managementChecks } from '../../shared/health/managementChecks';
import { referencedSecrets } from '../../shared/health/runHealthCheck';

const PRINCIPAL = '0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff';
const RESOURCE_ID = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso';

const SECRETS_USER = '4633458b-17de-408a-b874-0445c86b69e6';
const KV_READER = '21090545-7ca7-4776-b22c-e363652d74d2';
const KV_ADMINISTRATOR = '00482a5a-887f-4fb3-b363-3b7fe8e74483';
const CRYPTO_USER = '12338af0-0e69-4776-bea7-57ae8d297424';
const CERTIFICATE_USER = 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba';
const ALL_KINDS: ReaderPermission[] = ['secrets', 'keys', 'certificates'];

const vault = (
  firewall: 'on' | 'off' | 'any',
  resourceId: string | null = RESOURCE_ID,
  opts: { permissions?: ReaderPermission[]; location?: string } = {},
): VaultSettings => ({
  alias: 'default',
  uri: 'https://contoso.vault.azure.net/',
  resourceId: resourceId ?? undefined,
  expectations: {
    firewall,
    location: opts.location,
    readers: [{ name: 'Customer Insights', principalId: PRINCIPAL, permissions: opts.permissions ?? ['secrets'] }],
  },
});

const policy = (kinds: Partial<Record<ReaderPermission, string[]>>, objectId = PRINCIPAL) => ({
  objectId,
  secrets: kinds.secrets ?? [],
  keys: kinds.keys ?? [],
  certificates: kinds.certificates ?? [],
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
  location: 'westeurope',
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
      resource({ enableRbacAuthorization: false, accessPolicies: [policy({ secrets: ['Get', 'List'] }, PRINCIPAL.toUpperCase())] }),
      [],
      'ok',
    ],
    [
      'an access-policy vault with Get only',
      resource({ enableRbacAuthorization: false, accessPolicies: [policy({ secrets: ['get'] })] }),
      [],
      'failed:ReaderPermissionMissing',
    ],
  ])('checks the declared reader on %s', async (_label, r, roles, status) => {
    expect((await statusOf(vault('any'), reader(r, roles))).reader).toBe(status);
  });

  it.each([
    ['Key Vault Reader and Secrets User (Customer Insights, as documented)', [KV_READER, SECRETS_USER], null],
    ['Administrator alone', [KV_ADMINISTRATOR], null],
    ['Secrets User, Crypto User and Certificate User', [SECRETS_USER, CRYPTO_USER, CERTIFICATE_USER.toUpperCase()], null],
    ['Secrets User alone', [SECRETS_USER], 'keys, certificates'],
    ['Key Vault Reader alone (metadata, not secret values)', [KV_READER], 'secrets'],
    ['Secrets User and Crypto User', [SECRETS_USER, CRYPTO_USER], 'certificates'],
    ['Secrets User and Certificate User', [SECRETS_USER, CERTIFICATE_USER], 'keys'],
    ['no role', [], 'secrets, keys, certificates'],
  ])('on an RBAC vault, a reader needing all three kinds with %s misses %s', async (_label, roles, missing) => {
    const [check] = (await managementChecks(vault('any', RESOURCE_ID, { permissions: ALL_KINDS }), reader(resource(), roles), 1000)).filter(
      (c) => c.check === 'reader',
    );
    const target = `Customer Insights (${PRINCIPAL})`;
    if (missing === null) {
      expect(check).toMatchObject({ status: 'ok', cause: null, target, remedy: null });
    } else {
      expect(check).toMatchObject({ status: 'failed', cause: 'ReaderPermissionMissing', target: `${target}: ${missing}` });
      expect(check?.remedy).toBe(
        `Grant what "${target}: ${missing}" names as missing on vault default: on an RBAC vault the "Key Vault Secrets User" role for secrets and "Key Vault Reader" for keys and certificates, with access policies Get and List on each kind named.`,
      );
    }
  });

  it.each([
    ['Get and List on all three', { secrets: ['Get', 'List'], keys: ['get', 'list'], certificates: ['Get', 'List', 'Update'] }, null],
    ['All on each kind', { secrets: ['all'], keys: ['All'], certificates: ['all'] }, null],
    ['secrets only', { secrets: ['Get', 'List'] }, 'keys, certificates'],
    ['certificates with Get only', { secrets: ['Get', 'List'], keys: ['Get', 'List'], certificates: ['Get'] }, 'certificates'],
    ['keys and certificates but no secrets', { keys: ['Get', 'List'], certificates: ['Get', 'List'] }, 'secrets'],
  ])('on an access-policy vault, a reader needing all three kinds with %s misses %s', async (_label, kinds, missing) => {
    const r = resource({ enableRbacAuthorization: false, accessPolicies: [policy({}, 'someone-else'), policy(kinds)] });
    const [check] = (await managementChecks(vault('any', RESOURCE_ID, { permissions: ALL_KINDS }), reader(r, []), 1000)).filter(
      (c) => c.check === 'reader',
    );
    expect(check && `${check.status}:${check.target}`).toBe(
      missing === null ? `ok:Customer Insights (${PRINCIPAL})` : `failed:Customer Insights (${PRINCIPAL}): ${missing}`,
    );
  });

  it('asks a reader needing only keys for no secret role', async () => {
    const checks = await statusOf(vault('any', RESOURCE_ID, { permissions: ['keys'] }), reader(resource(), [KV_READER]));
    expect(checks.reader).toBe('ok');
  });

  it.each([
    ['westeurope', 'westeurope', 'ok'],
    ['West Europe', 'westeurope', 'ok'],
    ['westeurope', 'West Europe', 'ok'],
    [' westeurope ', 'WestEurope', 'ok'],
    ['westeurope', 'northeurope', 'failed:LocationNotAsExpected'],
    ['eastus', 'eastus2', 'failed:LocationNotAsExpected'],
  ])('with the location expected "%s" and the vault in "%s" reports %s', async (expected, actual, status) => {
    expect((await statusOf(vault('any', RESOURCE_ID, { location: expected }), reader(resource({ location: actual })))).location).toBe(
      status,
    );
  });

  it('names both regions in the location finding and its remedy', async () => {
    const checks = await managementChecks(
      vault('any', RESOURCE_ID, { location: 'westeurope' }),
      reader(resource({ location: 'northeurope' })),
      1000,
    );
    expect(checks.find((c) => c.check === 'location')).toMatchObject({
      status: 'failed',
      cause: 'LocationNotAsExpected',
      target: 'expected westeurope, is northeurope',
      remedy:
        'Vault default is not in the region VAULT_EXPECTATIONS names (expected westeurope, is northeurope): services such as Customer Insights need their vault in their own region; link a vault there, or change the expectation.',
    });
  });

  it('has no location row when no expectation names a location', async () => {
    const checks = await managementChecks(vault('any'), reader(resource({ location: 'northeurope' })), 1000);
    expect(checks.map((c) => c.check)).not.toContain('location');
  });

  it('skips the location check, like the other ARM checks, without a resource id', async () => {
    const checks = await managementChecks(vault('off', null, { location: 'westeurope' }), reader(resource()), 1000);
    expect(checks.find((c) => c.check === 'location')).toMatchObject({ status: 'skipped', cause: null });
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
