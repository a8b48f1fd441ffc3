/**
 * Drives the management SDKs a deployment uses (resources, storage, operationalinsights,
 * appinsights, appservice, authorization, keyvault) with the deployer's managed identity against
 * the ARM emulator at https://management.azure.com, through the CONNECT proxy, as
 * startDeploymentTarget sets it up.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationInsightsManagementClient } from '@azure/arm-appinsights';
import { WebSiteManagementClient } from '@azure/arm-appservice';
import { AuthorizationManagementClient } from '@azure/arm-authorization';
import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { OperationalInsightsManagementClient } from '@azure/arm-operationalinsights';
import { ResourceManagementClient } from '@azure/arm-resources';
import { StorageManagementClient } from '@azure/arm-storage';
import { ManagedIdentityCredential } from '@azure/identity';
import { type RestError } from '@azure/core-rest-pipeline';
import { EMULATOR_RESOURCE_GROUP } from '../../local/emulators/keyVaultTypes';
import { KEY_VAULT_SECRETS_USER, STORAGE_BLOB_DATA_OWNER } from '../../local/emulators/armEmulator';
import { startDeploymentTarget, type DeploymentTarget } from '../../local/emulators/deploymentTarget';
import { EMULATOR_TENANT_ID } from '../../local/emulators/managedIdentityEndpoint';
import { useLocalAzureInProcess } from '../support/inProcessAzure';
import { restError } from '../support/restError';
import { createAzureClients } from '../../cli/deploy/azureClients';
import { describeAzureError } from '../../cli/deploy/azureErrors';

const RG = 'rg-broker';
const FAST = { updateIntervalInMs: 5 };
const TABLE_DATA_CONTRIBUTOR = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3';

let target: DeploymentTarget;
let stateDir: string;
let restore: () => void;
let credential: ManagedIdentityCredential;
let resources: ResourceManagementClient;
let storage: StorageManagementClient;
let web: WebSiteManagementClient;
let authz: AuthorizationManagementClient;

/** The ARM error code, wherever the client put it. */
function armCode(err: RestError): string | undefined {
  return err.code ?? (err.details as { error?: { code?: string } } | undefined)?.error?.code;
}

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(os.tmpdir(), 'arm-deploy-'));
  target = await startDeploymentTarget({ stateDir, log: () => undefined });
  restore = useLocalAzureInProcess(target.azure);
  credential = new ManagedIdentityCredential({ clientId: target.deployer.clientId });
  resources = new ResourceManagementClient(credential, target.subscriptionId);
  storage = new StorageManagementClient(credential, target.subscriptionId);
  web = new WebSiteManagementClient(credential, target.subscriptionId);
  authz = new AuthorizationManagementClient(credential, target.subscriptionId);
  await resources.resourceGroups.createOrUpdate(RG, { location: 'westeurope', tags: { app: 'broker' } });
});

afterAll(async () => {
  await target?.stop();
  restore?.();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('resource groups', () => {
  it('answers 201 on create, 200 on update, and ResourceGroupNotFound for a missing one', async () => {
    target.arm.resetCounts();
    const created = await resources.resourceGroups.createOrUpdate('rg-other', { location: 'northeurope' });
    expect(created).toMatchObject({ name: 'rg-other', location: 'northeurope', properties: { provisioningState: 'Succeeded' } });
    const updated = await resources.resourceGroups.createOrUpdate('rg-other', { location: 'northeurope', tags: { a: 'b' } });
    expect(updated.tags).toEqual({ a: 'b' });
    expect(target.arm.requestCount({ method: 'PUT', path: /\/resourcegroups\/rg-other$/i })).toBe(2);
    expect((await resources.resourceGroups.get('RG-OTHER')).id).toBe(`/subscriptions/${target.subscriptionId}/resourceGroups/rg-other`);
    const missing = await restError(resources.resourceGroups.get('rg-missing'));
    expect(missing.statusCode).toBe(404);
    expect(armCode(missing)).toBe('ResourceGroupNotFound');
  });
});

describe('storage', () => {
  it('creates an account through the Location operation (202, one 202 poll, then 200) and echoes its settings', async () => {
    target.arm.resetCounts();
    const account = await storage.storageAccounts.create(
      RG,
      'stbroker',
      {
        location: 'westeurope',
        sku: { name: 'Standard_LRS' },
        kind: 'StorageV2',
        allowSharedKeyAccess: false,
        minimumTlsVersion: 'TLS1_2',
        allowBlobPublicAccess: false,
        enableHttpsTrafficOnly: true,
        tags: { app: 'broker' },
      },
      FAST,
    );
    expect(account.provisioningState).toBe('Succeeded');
    expect(target.arm.requestCount({ operation: 'lro.poll' })).toBe(2);
    const got = await storage.storageAccounts.getProperties(RG, 'stbroker');
    expect(got).toMatchObject({
      id: `/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/stbroker`,
      location: 'westeurope',
      tags: { app: 'broker' },
      allowSharedKeyAccess: false,
      minimumTlsVersion: 'TLS1_2',
      allowBlobPublicAccess: false,
      enableHttpsTrafficOnly: true,
      primaryEndpoints: {
        blob: 'https://stbroker.blob.core.windows.net/',
        table: 'https://stbroker.table.core.windows.net/',
        queue: 'https://stbroker.queue.core.windows.net/',
      },
    });
    expect((await storage.storageAccounts.getProperties(RG, 'stbroker')).creationTime).toEqual(got.creationTime);

    const patched = await storage.storageAccounts.update(RG, 'stbroker', {
      tags: { app: 'broker', env: 'test' },
      minimumTlsVersion: 'TLS1_2',
    });
    expect(patched).toMatchObject({ tags: { app: 'broker', env: 'test' }, allowSharedKeyAccess: false });
    target.arm.resetCounts();
    const again = await storage.storageAccounts.create(
      RG,
      'stbroker',
      { location: 'westeurope', sku: { name: 'Standard_LRS' }, kind: 'StorageV2', allowSharedKeyAccess: true },
      FAST,
    );
    expect(again.allowSharedKeyAccess).toBe(true);
    expect(target.arm.requestCount({ operation: 'lro.poll' })).toBe(0);
  });

  it('creates containers (201, then 200) and tables under it, and refuses missing parents and groups', async () => {
    const container = await storage.blobContainers.create(RG, 'stbroker', 'app-package', {});
    expect(container).toMatchObject({ name: 'app-package', publicAccess: 'None' });
    expect((await storage.blobContainers.get(RG, 'stbroker', 'app-package')).id).toBe(
      `/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/stbroker/blobServices/default/containers/app-package`,
    );
    const table = await storage.table.create(RG, 'stbroker', 'brokerhealth');
    expect(table).toMatchObject({ name: 'brokerhealth', tableName: 'brokerhealth' });
    expect((await storage.table.get(RG, 'stbroker', 'brokerhealth')).name).toBe('brokerhealth');

    const missingTable = await restError(storage.table.get(RG, 'stbroker', 'nothere'));
    expect([missingTable.statusCode, armCode(missingTable)]).toEqual([404, 'ResourceNotFound']);
    const orphan = await restError(storage.blobContainers.create(RG, 'stnowhere', 'c1', {}));
    expect([orphan.statusCode, armCode(orphan)]).toEqual([404, 'ParentResourceNotFound']);
    const noGroup = await restError(
      storage.storageAccounts.create(
        'rg-missing',
        'stx',
        { location: 'westeurope', kind: 'StorageV2', sku: { name: 'Standard_LRS' } },
        FAST,
      ),
    );
    expect([noGroup.statusCode, armCode(noGroup)]).toEqual([404, 'ResourceGroupNotFound']);
    const missing = await restError(storage.storageAccounts.getProperties(RG, 'stnowhere'));
    expect(missing.statusCode).toBe(404);
    expect(missing.message).toMatch(
      /^The Resource 'Microsoft\.Storage\/storageAccounts\/stnowhere' under resource group 'rg-broker' was not found/,
    );
  });
});

describe('monitoring', () => {
  it('creates a workspace through Azure-AsyncOperation, with a customerId stable across GETs and updates', async () => {
    const insights = new OperationalInsightsManagementClient(credential, target.subscriptionId);
    target.arm.resetCounts();
    const ws = await insights.workspaces.createOrUpdate(
      RG,
      'log-broker',
      { location: 'westeurope', sku: { name: 'PerGB2018' }, retentionInDays: 30 },
      FAST,
    );
    expect(ws.provisioningState).toBe('Succeeded');
    expect(target.arm.requestCount({ operation: 'lro.poll' })).toBe(2);
    expect(ws.customerId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await insights.workspaces.get(RG, 'log-broker')).customerId).toBe(ws.customerId);
    const updated = await insights.workspaces.createOrUpdate(RG, 'log-broker', { location: 'westeurope', retentionInDays: 60 }, FAST);
    expect([updated.customerId, updated.retentionInDays]).toEqual([ws.customerId, 60]);

    const ai = new ApplicationInsightsManagementClient(credential, target.subscriptionId);
    const component = await ai.components.createOrUpdate(RG, 'appi-broker', {
      location: 'westeurope',
      kind: 'web',
      applicationType: 'web',
      workspaceResourceId: ws.id,
    });
    expect(component).toMatchObject({ workspaceResourceId: ws.id, applicationType: 'web', ingestionMode: 'LogAnalytics' });
    expect(component.connectionString).toBe(
      `InstrumentationKey=${component.instrumentationKey};IngestionEndpoint=https://westeurope-0.in.applicationinsights.azure.com/;` +
        `LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=${component.appId}`,
    );
    expect((await ai.components.get(RG, 'appi-broker')).instrumentationKey).toBe(component.instrumentationKey);
  });
});

describe('App Service', () => {
  it('creates a Flex Consumption plan and app, whose system identity keeps its principal; settings, keys and PATCH', async () => {
    const plan = await web.appServicePlans.createOrUpdate(
      RG,
      'plan-broker',
      { location: 'westeurope', kind: 'functionapp', reserved: true, sku: { name: 'FC1', tier: 'FlexConsumption' } },
      FAST,
    );
    expect(plan).toMatchObject({
      kind: 'functionapp',
      reserved: true,
      sku: { name: 'FC1', tier: 'FlexConsumption' },
      provisioningState: 'Succeeded',
    });
    const site = await web.webApps.createOrUpdate(
      RG,
      'func-broker',
      {
        location: 'westeurope',
        kind: 'functionapp,linux',
        identity: { type: 'SystemAssigned' },
        serverFarmId: plan.id,
        httpsOnly: true,
        siteConfig: { minTlsVersion: '1.2', appSettings: [{ name: 'KEY_VAULT_URI', value: target.rbacVault.uri }] },
        functionAppConfig: {
          deployment: {
            storage: {
              type: 'blobContainer',
              value: 'https://stbroker.blob.core.windows.net/app-package',
              authentication: { type: 'SystemAssignedIdentity' },
            },
          },
          runtime: { name: 'node', version: '22' },
          scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 },
        },
        tags: { app: 'broker' },
      },
      FAST,
    );
    expect(site.identity).toMatchObject({ type: 'SystemAssigned', principalId: target.sitePrincipalId, tenantId: EMULATOR_TENANT_ID });
    expect(site).toMatchObject({
      defaultHostName: 'func-broker.azurewebsites.net',
      state: 'Running',
      httpsOnly: true,
      serverFarmId: plan.id,
      tags: { app: 'broker' },
      functionAppConfig: { runtime: { name: 'node', version: '22' } },
    });
    expect(site.hostNameSslStates).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'func-broker.azurewebsites.net', hostType: 'Standard' }),
        expect.objectContaining({ name: 'func-broker.scm.azurewebsites.net', hostType: 'Repository' }),
      ]),
    );
    expect(target.arm.appSettings('func-broker')).toEqual({ KEY_VAULT_URI: target.rbacVault.uri });

    const patched = await web.webApps.update(RG, 'func-broker', { clientAffinityEnabled: true, siteConfig: { http20Enabled: true } });
    expect(patched).toMatchObject({
      clientAffinityEnabled: true,
      httpsOnly: true,
      tags: { app: 'broker' },
      // Most of the configuration reads as null on the site, as App Service answers; config/web has it.
      siteConfig: { minTlsVersion: null, http20Enabled: true },
    });
    expect(await web.webApps.getConfiguration(RG, 'func-broker')).toMatchObject({ minTlsVersion: '1.2', http20Enabled: true });
    expect(patched.identity?.principalId).toBe(target.sitePrincipalId);
    expect((await web.webApps.get(RG, 'func-broker')).functionAppConfig?.deployment?.storage?.value).toBe(
      'https://stbroker.blob.core.windows.net/app-package',
    );

    await web.webApps.updateApplicationSettings(RG, 'func-broker', {
      properties: { KEY_VAULT_URI: target.rbacVault.uri, CACHE_TTL_SECONDS: '60' },
    });
    expect((await web.webApps.listApplicationSettings(RG, 'func-broker')).properties).toEqual({
      KEY_VAULT_URI: target.rbacVault.uri,
      CACHE_TTL_SECONDS: '60',
    });
    const keys = await web.webApps.listHostKeys(RG, 'func-broker');
    expect(keys.masterKey).toMatch(/^\S{20,}$/);
    expect((await web.webApps.listHostKeys(RG, 'func-broker')).functionKeys).toEqual(keys.functionKeys);
    await web.webApps.syncFunctionTriggers(RG, 'func-broker');
    const functions = [];
    for await (const f of web.webApps.listFunctions(RG, 'func-broker')) functions.push(f);
    expect(functions).toEqual([]);
    expect(armCode(await restError(web.webApps.getFunction(RG, 'func-broker', 'openApi')))).toBe('ResourceNotFound');
  });
});

describe("Flex Consumption refusals, told in the Web RP's words", () => {
  /** The deployment's own clients: they keep error bodies, which the Web RP answers in a shape the SDK does not read. */
  const deployClients = () => createAzureClients(credential, target.subscriptionId);
  const flexSite = (siteConfig: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    location: 'westeurope',
    kind: 'functionapp,linux',
    serverFarmId: `/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Web/serverfarms/plan-flex`,
    siteConfig,
    functionAppConfig: {
      runtime: { name: 'node', version: '22' },
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 },
    },
    ...extra,
  });

  beforeAll(async () => {
    await web.appServicePlans.createOrUpdate(
      RG,
      'plan-flex',
      { location: 'westeurope', kind: 'functionapp', reserved: true, sku: { name: 'FC1', tier: 'FlexConsumption' } },
      FAST,
    );
  });

  it('refuses one deprecated site configuration property with 400, ExtendedCode 51021, in the capitalised body', async () => {
    const err = await restError(deployClients().web.webApps.createOrUpdate(RG, 'func-flex', flexSite({ ftpsState: 'Disabled' }), FAST));
    expect(err.statusCode).toBe(400);
    // The SDK alone cannot read the body: this is what a user saw before.
    expect(err.message).toBe('Unexpected status code: 400');
    expect(describeAzureError(err)).toBe(
      '400 BadRequest: The following site configuration property (Site.SiteConfig.FtpsState) for Flex Consumption sites is invalid.  ' +
        'Please remove or rename it before retrying. (extended code 51021)',
    );
    expect(
      target.arm.resource(`/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Web/sites/func-flex`),
    ).toBeUndefined();
  });

  it('names every refused property in the list form, a null value included, and site properties too', async () => {
    const err = await restError(
      deployClients().web.webApps.createOrUpdate(
        RG,
        'func-flex',
        flexSite({ linuxFxVersion: 'Node|22', use32BitWorkerProcess: null }),
        FAST,
      ),
    );
    expect(describeAzureError(err)).toContain(
      '400 BadRequest: The following list of 2 site configuration properties (Site.SiteConfig.Use32BitWorkerProcess, Site.SiteConfig.LinuxFxVersion) ' +
        'for Flex Consumption sites is invalid.  Please remove or rename them before retrying.',
    );
    const container = await restError(
      deployClients().web.webApps.createOrUpdate(RG, 'func-flex', flexSite({}, { containerSize: 1536 }), FAST),
    );
    expect(describeAzureError(container)).toContain('(Site.ContainerSize) for Flex Consumption sites is invalid.');
  });

  it('refuses deprecated app settings, in the site body and through config/appsettings; takes what Flex documents', async () => {
    const inBody = await restError(
      deployClients().web.webApps.createOrUpdate(
        RG,
        'func-flex',
        flexSite({ appSettings: [{ name: 'FUNCTIONS_WORKER_RUNTIME', value: 'node' }] }),
        FAST,
      ),
    );
    expect(describeAzureError(inBody)).toBe(
      '400 BadRequest: The following app setting (Site.SiteConfig.AppSettings.FUNCTIONS_WORKER_RUNTIME) for Flex Consumption sites is invalid.  ' +
        'Please remove or rename it before retrying. (extended code 51021)',
    );
    const site = await web.webApps.createOrUpdate(
      RG,
      'func-flex',
      flexSite({ minTlsVersion: '1.2', alwaysOn: false }, { httpsOnly: true }),
      FAST,
    );
    expect(site.name).toBe('func-flex');
    const settings = await restError(
      deployClients().web.webApps.updateApplicationSettings(RG, 'func-flex', {
        properties: { KEY_VAULT_URI: target.rbacVault.uri, WEBSITE_NODE_DEFAULT_VERSION: '~22', WEBSITE_CONTENTSHARE: 'x' },
      }),
    );
    expect(describeAzureError(settings)).toContain(
      '(Site.SiteConfig.AppSettings.WEBSITE_NODE_DEFAULT_VERSION, Site.SiteConfig.AppSettings.WEBSITE_CONTENTSHARE) for Flex Consumption sites is invalid.',
    );
    const patch = await restError(deployClients().web.webApps.update(RG, 'func-flex', { siteConfig: { functionAppScaleLimit: 10 } }));
    expect(describeAzureError(patch)).toContain('(Site.SiteConfig.FunctionAppScaleLimit)');
  });

  it('serves the basic publishing credential policies: allowed on a new site, then off as PUT', async () => {
    expect((await web.webApps.getScmAllowed(RG, 'func-flex')).allow).toBe(true);
    expect((await web.webApps.getFtpAllowed(RG, 'func-flex')).allow).toBe(true);
    await web.webApps.updateScmAllowed(RG, 'func-flex', { allow: false });
    await web.webApps.updateFtpAllowed(RG, 'func-flex', { allow: false });
    expect((await web.webApps.getScmAllowed(RG, 'func-flex')).allow).toBe(false);
    expect((await web.webApps.getFtpAllowed(RG, 'func-flex')).allow).toBe(false);
  });
});

describe('user-assigned identities (Microsoft.ManagedIdentity)', () => {
  it('creates one (201) with the ids Azure assigns, ignores ids sent, keeps them on update (200); refuses a missing location', async () => {
    const id = `/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/broker-rotation`;
    const statuses: number[] = [];
    const onResponse = (r: { status: number }): void => {
      statuses.push(r.status);
    };
    const forged = '00000000-0000-4000-8000-00000000dead';
    const created = await resources.resources.beginCreateOrUpdateByIdAndWait(
      id,
      '2023-01-31',
      { location: 'westeurope', properties: { principalId: forged, clientId: forged } },
      { ...FAST, onResponse },
    );
    const props = created.properties as { tenantId: string; principalId: string; clientId: string };
    expect(props.tenantId).toBe(EMULATOR_TENANT_ID);
    expect(props.principalId).toMatch(/^[0-9a-f-]{36}$/);
    expect([props.principalId, props.clientId]).not.toContain(forged);
    const updated = await resources.resources.beginCreateOrUpdateByIdAndWait(
      id,
      '2023-01-31',
      { location: 'westeurope', tags: { purpose: 'rotation' } },
      { ...FAST, onResponse },
    );
    expect(statuses).toEqual([201, 200]);
    expect(updated.properties).toEqual(props);
    expect(updated.tags).toEqual({ purpose: 'rotation' });
    // Usable at once: the managed-identity endpoint serves its tokens by client id, with its principal id as oid.
    const token = await new ManagedIdentityCredential({ clientId: props.clientId }).getToken('https://vault.azure.net/.default');
    const claims = JSON.parse(Buffer.from((token?.token ?? '').split('.')[1] ?? '', 'base64url').toString('utf8')) as { oid?: string };
    expect(claims.oid).toBe(props.principalId);

    const noLocation = await restError(resources.resources.beginCreateOrUpdateByIdAndWait(`${id}2`, '2023-01-31', {}, FAST));
    expect(noLocation.statusCode).toBe(400);
    expect(armCode(noLocation)).toBe('LocationRequired');
  });
});

describe('role assignments and access policies', () => {
  const sub = (): string => `/subscriptions/${target.subscriptionId}`;
  const role = (guid: string): string => `${sub()}/providers/Microsoft.Authorization/roleDefinitions/${guid}`;

  it('creates at any existing scope, idempotently, refuses a duplicate under another name, gets, deletes', async () => {
    const account = `${sub()}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/stbroker`;
    const table = `${account}/tableServices/default/tables/brokerhealth`;
    const body = {
      roleDefinitionId: role(STORAGE_BLOB_DATA_OWNER),
      principalId: target.sitePrincipalId,
      principalType: 'ServicePrincipal' as const,
    };
    const name = 'f0e1d2c3-b4a5-4697-8877-665544332211';
    const created = await authz.roleAssignments.create(account, name, body);
    expect(created).toMatchObject({
      name,
      scope: account,
      principalId: target.sitePrincipalId,
      roleDefinitionId: role(STORAGE_BLOB_DATA_OWNER),
    });
    expect((await authz.roleAssignments.create(account, name, body)).name).toBe(name);
    const duplicate = await restError(authz.roleAssignments.create(account, '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d', body));
    expect([duplicate.statusCode, armCode(duplicate)]).toEqual([409, 'RoleAssignmentExists']);
    await authz.roleAssignments.create(table, 'aa1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d', {
      ...body,
      roleDefinitionId: role(TABLE_DATA_CONTRIBUTOR),
    });
    expect((await authz.roleAssignments.get(table, 'aa1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d')).scope).toBe(table);
    const missing = await restError(authz.roleAssignments.get(account, '11111111-2222-4333-8444-555555555555'));
    expect([missing.statusCode, armCode(missing)]).toEqual([404, 'RoleAssignmentNotFound']);
    const noScope = await restError(authz.roleAssignments.create(`${account}x`, name, body));
    expect(armCode(noScope)).toBe('ResourceNotFound');

    // The vault listing (the health check's) sees assignments made through ARM.
    const onVault = await authz.roleAssignments.create(target.rbacVault.id, 'bb1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d', {
      ...body,
      roleDefinitionId: role(KEY_VAULT_SECRETS_USER),
    });
    const listed = [];
    for await (const a of authz.roleAssignments.listForScope(target.rbacVault.id, { filter: `principalId eq '${target.sitePrincipalId}'` }))
      listed.push(a.name);
    expect(listed).toContain(onVault.name);
    expect(target.arm.roleAssignments(target.rbacVault.name).map((a) => a.name)).toContain(onVault.name);
    await authz.roleAssignments.delete(target.rbacVault.id, 'bb1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
    expect(target.arm.roleAssignments(target.rbacVault.name).map((a) => a.name)).not.toContain(onVault.name);
  });

  it('adds an access policy to the access-policy vault, merging permission names case-insensitively', async () => {
    const kvm = new KeyVaultManagementClient(credential, target.subscriptionId);
    const policy = { tenantId: EMULATOR_TENANT_ID, objectId: target.sitePrincipalId, permissions: { secrets: ['get', 'list'] as const } };
    const answer = await kvm.vaults.updateAccessPolicy(EMULATOR_RESOURCE_GROUP, target.accessPolicyVault.name, 'add', {
      properties: { accessPolicies: [{ ...policy, permissions: { secrets: ['get', 'list'] } }] },
    });
    expect(answer.properties.accessPolicies[0]).toMatchObject({
      objectId: target.sitePrincipalId,
      permissions: { secrets: ['get', 'list'] },
    });
    await kvm.vaults.updateAccessPolicy(EMULATOR_RESOURCE_GROUP, target.accessPolicyVault.name, 'add', {
      properties: { accessPolicies: [{ ...policy, permissions: { secrets: ['Get', 'List'] } }] },
    });
    const vault = await kvm.vaults.get(EMULATOR_RESOURCE_GROUP, target.accessPolicyVault.name);
    expect(vault.properties.enableRbacAuthorization).toBe(false);
    expect(vault.properties.accessPolicies).toEqual([
      expect.objectContaining({ objectId: target.sitePrincipalId, permissions: expect.objectContaining({ secrets: ['get', 'list'] }) }),
    ]);
    expect(target.arm.getVault(target.accessPolicyVault.name).accessPolicies).toEqual([
      { objectId: target.sitePrincipalId, secrets: ['get', 'list'], keys: [], certificates: [] },
    ]);
  });
});

describe('observation and failure injection', () => {
  it('finds stored resources by id (any casing) and answers an injected failure once', async () => {
    expect(
      target.arm.resource(
        `/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/STBROKER`,
      ),
    ).toMatchObject({ name: 'stbroker' });
    expect(
      target.arm.resource(
        `/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/nothere`,
      ),
    ).toBeUndefined();
    const workspace = target.arm.resource(
      `/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.OperationalInsights/workspaces/log-broker`,
    );
    expect(workspace).toBeDefined();

    target.arm.injectFailure({ method: 'PUT', path: /\/tables\/injected$/i, status: 409, code: 'Conflict', message: 'Injected conflict.' });
    target.arm.resetCounts();
    const failed = await restError(storage.table.create(RG, 'stbroker', 'injected'));
    expect([failed.statusCode, armCode(failed), failed.message]).toEqual([409, 'Conflict', 'Injected conflict.']);
    expect((await storage.table.create(RG, 'stbroker', 'injected')).name).toBe('injected');
    expect(target.arm.requestCount({ method: 'PUT', path: /\/tables\/injected$/i })).toBe(2);
    expect(target.arm.requestCount({ method: 'PATCH' }) + target.arm.requestCount({ method: 'DELETE' })).toBe(0);
    expect(target.arm.requestCount({ host: 'management.azure.com', method: 'PUT' })).toBe(2);
  });
});
