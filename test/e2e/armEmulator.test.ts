/**
 * Drives the real @azure/arm-keyvault KeyVaultManagementClient and @azure/arm-authorization
 * AuthorizationManagementClient, with the real DefaultAzureCredential (App Service managed identity),
 * against the ARM emulator at their default endpoint https://management.azure.com, reached through
 * the CONNECT proxy with the dev certificate trusted in-process.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { AuthorizationManagementClient } from '@azure/arm-authorization';
import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { DefaultAzureCredential } from '@azure/identity';
import { SecretClient, isRestError, type RestError } from '@azure/keyvault-secrets';
import {
  KEY_VAULT_ADMINISTRATOR,
  KEY_VAULT_READER,
  KEY_VAULT_SECRETS_OFFICER,
  KEY_VAULT_SECRETS_USER,
  READER,
  type VaultState,
} from '../../local/emulators/armEmulator';
import { EMULATOR_RESOURCE_GROUP, EMULATOR_SUBSCRIPTION_ID } from '../../local/emulators/keyVaultTypes';
import { managedIdentityToken, rawHttps, useLocalAzureInProcess } from '../support/inProcessAzure';
import { startLocalAzure, type LocalAzure } from '../../local/emulators/localAzure';
import { EMULATOR_PRINCIPAL_ID, EMULATOR_TENANT_ID } from '../../local/emulators/managedIdentityEndpoint';
import { restError } from '../support/restError';

const VAULT = 'contoso';
const OTHER = 'fabrikam';
const SUBSCRIPTION_SCOPE = `/subscriptions/${EMULATOR_SUBSCRIPTION_ID}`;
const RESOURCE_GROUP_SCOPE = `${SUBSCRIPTION_SCOPE}/resourceGroups/${EMULATOR_RESOURCE_GROUP}`;
const ALICE = '6d0c5a4e-1f2b-4c3d-8e9f-0a1b2c3d4e5f';

/** Variables that would steer DefaultAzureCredential or the proxy policy elsewhere. */

let azure: LocalAzure;
let stateDir: string;
let restoreProcess: (() => void) | undefined;
let credential: DefaultAzureCredential;
let kvm: KeyVaultManagementClient;
let authz: AuthorizationManagementClient;

/** Awaits a promise that must reject and returns the error, whatever it is. */
async function anyError(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e as Error,
  );
}

/** ARM error code as the generated clients expose it in `err.details` (arm-keyvault) or the parsed body. */
function detailsCode(err: RestError): string | undefined {
  return (err.details as { error?: { code?: string } } | undefined)?.error?.code;
}

async function listAssignments(
  scope: string,
  principalId?: string,
  client = authz,
): Promise<Array<{ name?: string; scope?: string; roleDefinitionId?: string; principalId?: string; principalType?: string }>> {
  const out = [];
  const options = principalId === undefined ? {} : { filter: `principalId eq '${principalId}'` };
  for await (const a of client.roleAssignments.listForScope(scope, options)) out.push(a);
  return out;
}

function roleDefinitionId(guid: string): string {
  return `${SUBSCRIPTION_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/${guid}`;
}

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(os.tmpdir(), 'arm-emulator-'));
  azure = await startLocalAzure({ stateDir, vaults: [VAULT, OTHER] });
  restoreProcess = useLocalAzureInProcess(azure);
  credential = new DefaultAzureCredential();
  kvm = new KeyVaultManagementClient(credential, EMULATOR_SUBSCRIPTION_ID);
  authz = new AuthorizationManagementClient(credential, EMULATOR_SUBSCRIPTION_ID);
});

afterAll(async () => {
  await azure?.stop();
  restoreProcess?.();
  rmSync(stateDir, { recursive: true, force: true });
});

afterEach(() => {
  azure.arm.setFault(null);
  azure.keyVault.clearFaults();
  // Re-registering restores the defaults; role assignments are removed explicitly by the tests that add them.
  azure.arm.addVault(VAULT);
  azure.arm.addVault(OTHER);
});

describe('vaults.get', () => {
  it('returns the defaults of every registered vault at keyVault.resourceId(name)', async () => {
    azure.arm.resetCounts();
    const vault = await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT);
    expect(vault.id).toBe(azure.keyVault.resourceId(VAULT));
    expect(vault.name).toBe(VAULT);
    expect(vault.type).toBe('Microsoft.KeyVault/vaults');
    expect(vault.properties).toMatchObject({
      tenantId: EMULATOR_TENANT_ID,
      sku: { family: 'A', name: 'standard' },
      networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow', ipRules: [], virtualNetworkRules: [] },
      publicNetworkAccess: 'Enabled',
      enableSoftDelete: true,
      softDeleteRetentionInDays: 90,
      enableRbacAuthorization: true,
      accessPolicies: [],
      vaultUri: azure.keyVault.vaultUri(VAULT),
      provisioningState: 'Succeeded',
    });
    // ARM leaves purge protection out until it is switched on; the SDK model shows undefined.
    expect(vault.properties.enablePurgeProtection).toBeUndefined();
    expect(vault.systemData?.createdAt).toBeInstanceOf(Date);
    expect(azure.arm.requestCount({ operation: 'vaults.get', vault: VAULT, method: 'GET' })).toBe(1);
    expect((await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, OTHER)).properties.vaultUri).toBe(azure.keyVault.vaultUri(OTHER));
  });

  const patches: Array<[string, Partial<VaultState>, Record<string, unknown>]> = [
    ['network ACL default action', { networkDefaultAction: 'Deny' }, { networkAcls: expect.objectContaining({ defaultAction: 'Deny' }) }],
    [
      'IP and VNet rules',
      {
        ipRules: ['203.0.113.0/24', '198.51.100.7'],
        virtualNetworkRules: [`${RESOURCE_GROUP_SCOPE}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/functions`],
      },
      {
        networkAcls: expect.objectContaining({
          ipRules: [{ value: '203.0.113.0/24' }, { value: '198.51.100.7' }],
          virtualNetworkRules: [
            expect.objectContaining({ id: `${RESOURCE_GROUP_SCOPE}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/functions` }),
          ],
        }),
      },
    ],
    ['public network access', { publicNetworkAccess: 'Disabled' }, { publicNetworkAccess: 'Disabled' }],
    [
      'soft delete and retention',
      { enableSoftDelete: false, softDeleteRetentionInDays: 7 },
      { enableSoftDelete: false, softDeleteRetentionInDays: 7 },
    ],
    ['purge protection', { enablePurgeProtection: true }, { enablePurgeProtection: true }],
    ['RBAC mode', { enableRbacAuthorization: false }, { enableRbacAuthorization: false }],
    [
      'access policies',
      { accessPolicies: [{ objectId: EMULATOR_PRINCIPAL_ID, secrets: ['get', 'list'] }] },
      {
        accessPolicies: [
          {
            tenantId: EMULATOR_TENANT_ID,
            objectId: EMULATOR_PRINCIPAL_ID,
            applicationId: undefined,
            permissions: { keys: [], secrets: ['get', 'list'], certificates: [], storage: [] },
          },
        ],
      },
    ],
    [
      'access policies on keys and certificates',
      { accessPolicies: [{ objectId: EMULATOR_PRINCIPAL_ID, secrets: ['Get', 'List'], keys: ['Get', 'List'], certificates: ['all'] }] },
      {
        accessPolicies: [
          expect.objectContaining({
            objectId: EMULATOR_PRINCIPAL_ID,
            permissions: { keys: ['Get', 'List'], secrets: ['Get', 'List'], certificates: ['all'], storage: [] },
          }),
        ],
      },
    ],
  ];

  it.each(patches)('reports a patched %s and leaves the other vault alone', async (_label, patch, expected) => {
    azure.arm.setVault(VAULT, patch);
    const vault = await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT);
    expect(vault.properties).toMatchObject(expected);
    const other = await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, OTHER);
    expect(other.properties).toMatchObject({
      networkAcls: { defaultAction: 'Allow' },
      publicNetworkAccess: 'Enabled',
      enableRbacAuthorization: true,
    });
  });

  it('reports the location a test sets (westeurope by default) and leaves the other vault in its own', async () => {
    expect((await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT)).location).toBe('westeurope');
    azure.arm.setVault(VAULT, { location: 'northeurope' });
    expect((await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT)).location).toBe('northeurope');
    expect((await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, OTHER)).location).toBe('westeurope');
    expect(azure.arm.getVault(VAULT).location).toBe('northeurope');
  });

  it('keeps earlier patches when a later one changes another setting', async () => {
    azure.arm.setVault(VAULT, { networkDefaultAction: 'Deny', ipRules: ['203.0.113.9'] });
    azure.arm.setVault(VAULT, { publicNetworkAccess: 'Disabled' });
    const { properties } = await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT);
    expect(properties.networkAcls?.defaultAction).toBe('Deny');
    expect(properties.networkAcls?.ipRules).toEqual([{ value: '203.0.113.9' }]);
    expect(properties.publicNetworkAccess).toBe('Disabled');
    expect(azure.arm.getVault(VAULT)).toMatchObject({ networkDefaultAction: 'Deny', publicNetworkAccess: 'Disabled' });
  });

  it('answers an unknown vault with 404 ResourceNotFound and an unknown resource group with ResourceGroupNotFound', async () => {
    const missing = await restError(kvm.vaults.get(EMULATOR_RESOURCE_GROUP, 'nowhere'));
    expect(missing.statusCode).toBe(404);
    expect(missing.code).toBe('ResourceNotFound');
    expect(detailsCode(missing)).toBe('ResourceNotFound');
    expect(missing.message).toMatch(/^The Resource 'Microsoft\.KeyVault\/vaults\/nowhere' under resource group 'local' was not found\./);

    const wrongGroup = await restError(kvm.vaults.get('elsewhere', VAULT));
    expect(wrongGroup.statusCode).toBe(404);
    expect(wrongGroup.code).toBe('ResourceGroupNotFound');
  });

  it('is independent of the Key Vault emulator: data-plane faults and control-plane settings combine', async () => {
    azure.keyVault.setSecret(VAULT, 'combined', 'v');
    azure.keyVault.setFault({ kind: 'policy' }, VAULT);
    azure.arm.setVault(VAULT, { enableRbacAuthorization: false, accessPolicies: [] });
    const err = await restError(new SecretClient(azure.keyVault.vaultUri(VAULT), credential).getSecret('combined'));
    expect(err.statusCode).toBe(403);
    expect((await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT)).properties.enableRbacAuthorization).toBe(false);

    azure.keyVault.clearFaults();
    expect((await new SecretClient(azure.keyVault.vaultUri(VAULT), credential).getSecret('combined')).value).toBe('v');
    expect((await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT)).properties.enableRbacAuthorization).toBe(false);
  });
});

describe('roleAssignments.listForScope', () => {
  it('lists the principal’s assignments at the vault scope, inherited ones included, until they are removed', async () => {
    const vaultScope = azure.keyVault.resourceId(VAULT);
    const direct = azure.arm.addRoleAssignment(VAULT, EMULATOR_PRINCIPAL_ID, KEY_VAULT_SECRETS_USER);
    const fromGroup = azure.arm.addRoleAssignment(VAULT, EMULATOR_PRINCIPAL_ID, READER, 'resourceGroup');
    const fromSubscription = azure.arm.addRoleAssignment(VAULT, EMULATOR_PRINCIPAL_ID, KEY_VAULT_READER, 'subscription');
    const someoneElse = azure.arm.addRoleAssignment(VAULT, ALICE, KEY_VAULT_ADMINISTRATOR);
    const otherVault = azure.arm.addRoleAssignment(OTHER, EMULATOR_PRINCIPAL_ID, KEY_VAULT_SECRETS_OFFICER);
    try {
      azure.arm.resetCounts();
      const mine = await listAssignments(vaultScope, EMULATOR_PRINCIPAL_ID);
      expect(azure.arm.requestCount({ operation: 'roleAssignments.list', vault: VAULT })).toBe(1);
      expect(mine.map((a) => a.name).sort()).toEqual([direct, fromGroup, fromSubscription].sort());
      const byName = new Map(mine.map((a) => [a.name, a]));
      expect(byName.get(direct)).toEqual({
        id: `${vaultScope}/providers/Microsoft.Authorization/roleAssignments/${direct}`,
        name: direct,
        type: 'Microsoft.Authorization/roleAssignments',
        scope: vaultScope,
        roleDefinitionId: roleDefinitionId(KEY_VAULT_SECRETS_USER),
        principalId: EMULATOR_PRINCIPAL_ID,
        principalType: 'ServicePrincipal',
        condition: null,
        conditionVersion: null,
        description: null,
        delegatedManagedIdentityResourceId: null,
        createdOn: expect.any(Date),
        updatedOn: expect.any(Date),
      });
      expect(byName.get(fromGroup)).toMatchObject({ scope: RESOURCE_GROUP_SCOPE, roleDefinitionId: roleDefinitionId(READER) });
      expect(byName.get(fromSubscription)).toMatchObject({
        scope: SUBSCRIPTION_SCOPE,
        roleDefinitionId: roleDefinitionId(KEY_VAULT_READER),
      });

      // Without a filter: everyone's assignments at, above and below the scope, never another vault's.
      expect((await listAssignments(vaultScope)).map((a) => a.name).sort()).toEqual(
        [direct, fromGroup, fromSubscription, someoneElse].sort(),
      );
      expect((await listAssignments(RESOURCE_GROUP_SCOPE, EMULATOR_PRINCIPAL_ID)).map((a) => a.name).sort()).toEqual(
        [direct, fromGroup, fromSubscription, otherVault].sort(),
      );
      expect((await listAssignments(vaultScope, ALICE)).map((a) => a.name)).toEqual([someoneElse]);

      expect(azure.arm.removeRoleAssignments(VAULT, EMULATOR_PRINCIPAL_ID)).toBe(3);
      expect(await listAssignments(vaultScope, EMULATOR_PRINCIPAL_ID)).toEqual([]);
      // Only what applied to VAULT went: OTHER's own assignment stays.
      expect((await listAssignments(azure.keyVault.resourceId(OTHER), EMULATOR_PRINCIPAL_ID)).map((a) => a.name)).toEqual([otherVault]);
    } finally {
      azure.arm.removeRoleAssignments(VAULT, ALICE);
      azure.arm.removeRoleAssignments(OTHER, EMULATOR_PRINCIPAL_ID);
    }
  });

  it('pages through nextLink, keeping the filter', async () => {
    const names = Array.from({ length: 5 }, () => azure.arm.addRoleAssignment(VAULT, ALICE, KEY_VAULT_SECRETS_USER));
    azure.arm.addRoleAssignment(VAULT, EMULATOR_PRINCIPAL_ID, READER);
    azure.arm.setPageSize(2);
    try {
      azure.arm.resetCounts();
      const listed = await listAssignments(azure.keyVault.resourceId(VAULT), ALICE);
      expect(listed.map((a) => a.name)).toEqual(names);
      expect(azure.arm.requestCount({ operation: 'roleAssignments.list' })).toBe(3);
    } finally {
      azure.arm.setPageSize(100);
      azure.arm.removeRoleAssignments(VAULT, ALICE);
      azure.arm.removeRoleAssignments(VAULT, EMULATOR_PRINCIPAL_ID);
    }
  });

  it('refuses an unsupported filter with 400 and an unknown vault scope with 404', async () => {
    const badFilter = await restError(
      authz.roleAssignments.listForScope(azure.keyVault.resourceId(VAULT), { filter: "roleDefinitionId eq 'x'" }).next(),
    );
    expect(badFilter.statusCode).toBe(400);
    expect(badFilter.code).toBe('UnsupportedQuery');
    const missing = await restError(authz.roleAssignments.listForScope(azure.keyVault.resourceId('nowhere')).next());
    expect(missing.statusCode).toBe(404);
    expect(missing.code).toBe('ResourceNotFound');
  });
});

describe('faults', () => {
  it('403 AuthorizationFailed: the identity lacks Reader, for both clients', async () => {
    azure.arm.setFault({ status: 403 });
    const get = await restError(kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT));
    expect(get.statusCode).toBe(403);
    expect(get.code).toBe('AuthorizationFailed');
    expect(detailsCode(get)).toBe('AuthorizationFailed');
    expect(get.message).toContain(`The client '${EMULATOR_PRINCIPAL_ID}' with object id '${EMULATOR_PRINCIPAL_ID}'`);
    expect(get.message).toContain("'Microsoft.KeyVault/vaults/read'");

    const list = await restError(listAssignments(azure.keyVault.resourceId(VAULT), EMULATOR_PRINCIPAL_ID));
    expect(list.statusCode).toBe(403);
    expect(list.code).toBe('AuthorizationFailed');
    expect(list.message).toContain("'Microsoft.Authorization/roleAssignments/read'");

    azure.arm.setFault(null);
    expect((await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT)).name).toBe(VAULT);
  });

  it('500 InternalServerError surfaces once retries are off', async () => {
    const noRetry = new KeyVaultManagementClient(credential, EMULATOR_SUBSCRIPTION_ID, { retryOptions: { maxRetries: 0 } });
    azure.arm.setFault({ status: 500 });
    azure.arm.resetCounts();
    const err = await restError(noRetry.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT));
    expect(err.statusCode).toBe(500);
    expect(err.code).toBe('InternalServerError');
    expect(azure.arm.requestCount({ operation: 'vaults.get' })).toBe(1);

    const noRetryAuthz = new AuthorizationManagementClient(credential, EMULATOR_SUBSCRIPTION_ID, { retryOptions: { maxRetries: 0 } });
    const listErr = await restError(listAssignments(azure.keyVault.resourceId(VAULT), undefined, noRetryAuthz));
    expect(listErr.statusCode).toBe(500);
    expect(listErr.code).toBe('InternalServerError');
  });

  it('503 ServiceUnavailable with Retry-After is retried by the default policy, then surfaces', async () => {
    azure.arm.setFault({ status: 503 });
    azure.arm.resetCounts();
    const err = await restError(kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT));
    expect(err.statusCode).toBe(503);
    expect(err.code).toBe('ServiceUnavailable');
    expect(err.response?.headers.get('retry-after')).toBe('0');
    // One try plus the default three retries.
    expect(azure.arm.requestCount({ operation: 'vaults.get' })).toBe(4);
  });

  it('hangs until the caller aborts (AbortError, not a RestError)', async () => {
    azure.arm.setFault({ kind: 'hang' });
    const get = await anyError(kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT, { abortSignal: AbortSignal.timeout(200) }));
    expect(get.name).toBe('AbortError');
    expect(isRestError(get)).toBe(false);
    const list = await anyError(
      authz.roleAssignments.listForScope(azure.keyVault.resourceId(VAULT), { abortSignal: AbortSignal.timeout(200) }).next(),
    );
    expect(list.name).toBe('AbortError');
    azure.arm.setFault(null);
    expect((await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT)).name).toBe(VAULT);
  });
});

describe('authentication and plumbing', () => {
  it('refuses a token for another audience with 401 InvalidAuthenticationTokenAudience', async () => {
    const wrongAudience = new KeyVaultManagementClient(credential, EMULATOR_SUBSCRIPTION_ID, {
      credentials: { scopes: ['https://vault.azure.net/.default'] },
    });
    const err = await restError(wrongAudience.vaults.get(EMULATOR_RESOURCE_GROUP, VAULT));
    expect(err.statusCode).toBe(401);
    expect(err.code).toBe('InvalidAuthenticationTokenAudience');
    expect(err.message).toContain("wrong audience or resource 'https://vault.azure.net'");
    expect(err.response?.headers.get('www-authenticate')).toMatch(
      /^Bearer authorization_uri="https:\/\/login\.windows\.net\/[0-9a-f-]{36}", error="invalid_token"/,
    );

    const wrongAuthz = new AuthorizationManagementClient(credential, EMULATOR_SUBSCRIPTION_ID, {
      credentialScopes: ['https://vault.azure.net/.default'],
    });
    const listErr = await restError(listAssignments(azure.keyVault.resourceId(VAULT), undefined, wrongAuthz));
    expect(listErr.statusCode).toBe(401);
    expect(listErr.code).toBe('InvalidAuthenticationTokenAudience');
  });

  it('answers a request without a token, or with a forged one, with ARM’s 401 on the wire', async () => {
    const vaultPath = `${azure.keyVault.resourceId(VAULT)}?api-version=2026-02-01`;
    const none = await rawHttps(azure, { port: azure.arm.port, host: 'management.azure.com' }, 'GET', vaultPath);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toContain('error="invalid_token"');
    expect(JSON.parse(none.body)).toEqual({
      error: { code: 'AuthenticationFailed', message: "Authentication failed. The 'Authorization' header is missing." },
    });
    const forged = await rawHttps(azure, { port: azure.arm.port, host: 'management.azure.com' }, 'GET', vaultPath, {
      authorization: `Bearer ${await managedIdentityToken(azure, 'https://management.azure.com')}x`,
    });
    expect(forged.status).toBe(401);
    expect((JSON.parse(forged.body) as { error: { code: string } }).error.code).toBe('InvalidAuthenticationToken');
    const ok = await rawHttps(azure, { port: azure.arm.port, host: 'management.azure.com' }, 'GET', vaultPath, {
      authorization: `Bearer ${await managedIdentityToken(azure, 'https://management.azure.com')}`,
    });
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.body) as { properties: { networkAcls: { defaultAction: string } } }).properties.networkAcls.defaultAction).toBe(
      'Allow',
    );
    const noVersion = await rawHttps(
      azure,
      { port: azure.arm.port, host: 'management.azure.com' },
      'GET',
      azure.keyVault.resourceId(VAULT),
      {
        authorization: `Bearer ${await managedIdentityToken(azure, 'https://management.azure.com')}`,
      },
    );
    expect(noVersion.status).toBe(400);
    expect((JSON.parse(noVersion.body) as { error: { code: string } }).error.code).toBe('MissingApiVersionParameter');
  });

  it('serves a certificate valid for management.azure.com; the proxy tunnels it and still refuses other hosts', async () => {
    expect(new X509Certificate(azure.certPem).checkHost('management.azure.com')).toBe('management.azure.com');
    expect(await connectStatus('management.azure.com:443')).toBe(200);
    expect(await connectStatus('login.microsoftonline.com:443')).toBe(403);
    expect(await connectStatus('management.azure.com:80')).toBe(403);
  });

  it('tunnels the function app and SCM hosts to the same server; storage hosts only when Azurite ports are given', async () => {
    for (const name of [
      'func-x.azurewebsites.net',
      'func-x.scm.azurewebsites.net',
      'stx.table.core.windows.net',
      'stx.blob.core.windows.net',
    ]) {
      expect(new X509Certificate(azure.certPem).checkHost(name)).toBeDefined();
    }
    expect(await connectStatus('func-x.azurewebsites.net:443')).toBe(200);
    expect(await connectStatus('func-x.scm.azurewebsites.net:443')).toBe(200);
    expect(await connectStatus('stx.table.core.windows.net:443')).toBe(403);
    expect(await connectStatus('a.b.azurewebsites.net:443')).toBe(403);
  });
});

/** The status line of a CONNECT to the proxy. */
function connectStatus(authority: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: azure.proxy.port, method: 'CONNECT', path: authority, agent: false });
    req.on('connect', (res: http.IncomingMessage, socket: import('node:net').Socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}
