/**
 * One Deploy to the emulated SCM site, the published package running as the site, Event Grid
 * system topics and subscriptions validated against the deployed functions, and Azurite reached by
 * a production storage host name: each through the CONNECT proxy with the deployer's managed
 * identity, as a deploy process would. Needs `npm run build` (the package is built from dist/).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSiteManagementClient } from '@azure/arm-appservice';
import { AuthorizationManagementClient } from '@azure/arm-authorization';
import { EventGridManagementClient } from '@azure/arm-eventgrid';
import { ResourceManagementClient } from '@azure/arm-resources';
import { StorageManagementClient } from '@azure/arm-storage';
import { TableClient } from '@azure/data-tables';
import { ManagedIdentityCredential } from '@azure/identity';
import { STORAGE_BLOB_DATA_CONTRIBUTOR } from '../../local/emulators/armEmulator';
import { startDeploymentTarget, type DeploymentTarget } from '../../local/emulators/deploymentTarget';
import { EMULATOR_PRINCIPAL_ID } from '../../local/emulators/managedIdentityEndpoint';
import { buildFunctionPackage, publishPackage, scmRequest, siteRequest } from '../support/deploymentPackage';
import { useLocalAzureInProcess } from '../support/inProcessAzure';
import { restError } from '../support/restError';

const RG = 'rg-site';
const APP = 'func-site';
const ACCOUNT = 'stsite';
const FAST = { updateIntervalInMs: 5 };

let target: DeploymentTarget;
let stateDir: string;
let restore: () => void;
let credential: ManagedIdentityCredential;
let web: WebSiteManagementClient;
let siteId: string;
let accountId: string;
let zip: Uint8Array;
const logLines: string[] = [];

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(os.tmpdir(), 'arm-site-'));
  target = await startDeploymentTarget({
    stateDir,
    storageAccounts: [ACCOUNT],
    sitePath: process.env.PATH,
    log: (line) => logLines.push(line),
  });
  restore = useLocalAzureInProcess(target.azure);
  credential = new ManagedIdentityCredential({ clientId: target.deployer.clientId });
  web = new WebSiteManagementClient(credential, target.subscriptionId);
  const storage = new StorageManagementClient(credential, target.subscriptionId);
  await new ResourceManagementClient(credential, target.subscriptionId).resourceGroups.createOrUpdate(RG, { location: 'westeurope' });
  const account = await storage.storageAccounts.create(
    RG,
    ACCOUNT,
    { location: 'westeurope', kind: 'StorageV2', sku: { name: 'Standard_LRS' } },
    FAST,
  );
  accountId = account.id ?? '';
  await storage.blobContainers.create(RG, ACCOUNT, 'app-package', {});
  const plan = await web.appServicePlans.createOrUpdate(
    RG,
    'plan-site',
    { location: 'westeurope', kind: 'functionapp', reserved: true, sku: { name: 'FC1', tier: 'FlexConsumption' } },
    FAST,
  );
  const site = await web.webApps.createOrUpdate(
    RG,
    APP,
    {
      location: 'westeurope',
      kind: 'functionapp,linux',
      identity: { type: 'SystemAssigned' },
      serverFarmId: plan.id,
      httpsOnly: true,
      siteConfig: { appSettings: [{ name: 'KEY_VAULT_URI', value: target.rbacVault.uri }] },
      functionAppConfig: {
        deployment: {
          storage: {
            type: 'blobContainer',
            value: `https://${ACCOUNT}.blob.core.windows.net/app-package`,
            authentication: { type: 'SystemAssignedIdentity' },
          },
        },
        runtime: { name: 'node', version: '22' },
        scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 },
      },
    },
    FAST,
  );
  siteId = site.id ?? '';
  zip = buildFunctionPackage();
});

afterAll(async () => {
  await target?.stop();
  restore?.();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('One Deploy', () => {
  it('is refused with 403 while the site identity has no blob data role on the deployment storage', async () => {
    const refused = await publishPackage(credential, APP, zip);
    expect(refused.status).toBe(403);
    expect(refused.deployment.error).toMatchObject({ code: 'AuthorizationPermissionMismatch' });
    expect(target.arm.deployedPackage(APP)?.publishes).toBe(0);
  });

  it('needs an ARM token', async () => {
    const anonymous = await siteRequest(`https://${APP}.scm.azurewebsites.net/api/deployments/latest`);
    expect(anonymous.status).toBe(401);
  });

  it('deploys with the role, then runs the package as the site: its functions, keys and routes', async () => {
    const authz = new AuthorizationManagementClient(credential, target.subscriptionId);
    await authz.roleAssignments.create(accountId, '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a', {
      roleDefinitionId: `/subscriptions/${target.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${STORAGE_BLOB_DATA_CONTRIBUTOR}`,
      principalId: target.sitePrincipalId,
      principalType: 'ServicePrincipal',
    });
    target.arm.resetCounts();
    const published = await publishPackage(credential, APP, zip);
    expect(published.status).toBe(202);
    expect(published.polls).toBeGreaterThanOrEqual(2);
    expect(published.deployment).toMatchObject({ status: 4, status_text: '', complete: true });
    expect(target.arm.requestCount({ operation: 'scm.publish', method: 'POST' })).toBe(1);
    const deployed = target.arm.deployedPackage(APP);
    expect(deployed?.publishes).toBe(1);
    expect(deployed?.files?.has('dist/functions/index.js')).toBe(true);
    expect(deployed?.functions.map((f) => f.name)).toEqual(expect.arrayContaining(['openApi', 'health', 'secretEvents', 'healthCheck']));

    const names = [];
    for await (const f of web.webApps.listFunctions(RG, APP)) names.push(f.name);
    expect(names).toContain(`${APP}/openApi`);
    const openApi = await web.webApps.getFunction(RG, APP, 'openApi');
    expect(openApi.invokeUrlTemplate).toBe(`https://${APP}.azurewebsites.net/api/openapi.json`);
    const keys = await web.webApps.listHostKeys(RG, APP);
    expect(keys.systemKeys?.['eventgrid_extension']).toBeDefined();

    const served = await siteRequest(`https://${APP}.azurewebsites.net/api/openapi.json`);
    if (served.status !== 200) throw new Error(`site answered ${served.status}: ${target.arm.siteOutput(APP)}`);
    expect(JSON.parse(served.bodyAsText ?? '{}')).toMatchObject({ openapi: expect.stringMatching(/^3\.1/) });
    const admin = await siteRequest(`https://${APP}.azurewebsites.net/admin/functions/healthCheck`);
    expect(admin.status).toBe(401);
    // With the master key the request reaches the host, which knows no such non-HTTP function.
    const keyed = await siteRequest(`https://${APP}.azurewebsites.net/admin/functions/nothere`, {
      'x-functions-key': keys.masterKey ?? '',
    });
    expect([keyed.status, JSON.parse(keyed.bodyAsText ?? '{}').code]).toEqual([404, 'NotFound']);
  });

  it('fails a package without host.json (status 3) and keeps serving the last good one', async () => {
    const broken = await publishPackage(credential, APP, buildFunctionPackage({ omit: ['host.json'] }));
    expect(broken.deployment).toMatchObject({ status: 3, complete: true, status_text: expect.stringContaining('host.json') });
    expect(target.arm.deployedPackage(APP)?.publishes).toBe(2);
    const latest = await scmRequest(credential, 'GET', `https://${APP}.scm.azurewebsites.net/api/deployments/latest`);
    expect(latest.json.status).toBe(3);
    expect((await siteRequest(`https://${APP}.azurewebsites.net/api/openapi.json`)).status).toBe(200);
  });

  it('restarts the site on an app-settings change, and answers 503 when its host cannot start', async () => {
    await web.webApps.updateApplicationSettings(RG, APP, { properties: { KEY_VAULT_URI: 'not a uri' } });
    const failing = await siteRequest(`https://${APP}.azurewebsites.net/api/openapi.json`);
    expect(failing.status).toBe(503);
    expect(logLines.join('\n')).toMatch(/\[site func-site\] host exited[\s\S]*KEY_VAULT_URI/);
    await web.webApps.updateApplicationSettings(RG, APP, { properties: { KEY_VAULT_URI: target.rbacVault.uri } });
    expect((await siteRequest(`https://${APP}.azurewebsites.net/api/openapi.json`)).status).toBe(200);
  });
});

describe('Event Grid', () => {
  it('creates one system topic per vault, with an identity, and subscriptions to deployed functions only', async () => {
    const eg = new EventGridManagementClient(credential, target.subscriptionId);
    const topic = await eg.systemTopics.beginCreateOrUpdateAndWait(
      RG,
      'evgt-vault',
      { location: 'westeurope', source: target.rbacVault.id, topicType: 'Microsoft.KeyVault.vaults', identity: { type: 'SystemAssigned' } },
      FAST,
    );
    expect(topic).toMatchObject({ provisioningState: 'Succeeded', source: target.rbacVault.id, topicType: 'Microsoft.KeyVault.vaults' });
    expect(topic.identity?.principalId).toMatch(/^[0-9a-f-]{36}$/);
    expect(topic.systemData?.createdBy).toBe(target.deployer.principalId);
    expect((await eg.systemTopics.get(RG, 'evgt-vault')).metricResourceId).toBe(topic.metricResourceId);
    const listed = [];
    for await (const t of eg.systemTopics.listBySubscription()) listed.push(t.name);
    expect(listed).toEqual(['evgt-vault']);

    const second = await restError(
      eg.systemTopics.beginCreateOrUpdateAndWait(
        RG,
        'evgt-again',
        { location: 'westeurope', source: target.rbacVault.id, topicType: 'Microsoft.KeyVault.vaults' },
        FAST,
      ),
    );
    expect(second.statusCode).toBe(400);
    expect(second.message).toBe(
      `There is an existing tracked system topic for the given source ${target.rbacVault.id}. Only one system topic is allowed per source.`,
    );

    const subscription = {
      destination: { endpointType: 'AzureFunction' as const, resourceId: `${siteId}/functions/secretEvents`, maxEventsPerBatch: 1 },
      filter: { includedEventTypes: ['Microsoft.KeyVault.SecretNewVersionCreated', 'Microsoft.KeyVault.SecretNearExpiry'] },
      eventDeliverySchema: 'CloudEventSchemaV1_0',
      retryPolicy: { maxDeliveryAttempts: 10, eventTimeToLiveInMinutes: 60 },
    };
    const created = await eg.systemTopicEventSubscriptions.beginCreateOrUpdateAndWait(
      RG,
      'evgt-vault',
      'secret-events',
      subscription,
      FAST,
    );
    expect(created).toMatchObject({
      provisioningState: 'Succeeded',
      destination: { endpointType: 'AzureFunction', resourceId: `${siteId}/functions/secretEvents` },
      filter: { includedEventTypes: subscription.filter.includedEventTypes },
      eventDeliverySchema: 'CloudEventSchemaV1_0',
      retryPolicy: { maxDeliveryAttempts: 10, eventTimeToLiveInMinutes: 60 },
    });
    expect((await eg.systemTopicEventSubscriptions.get(RG, 'evgt-vault', 'secret-events')).id).toBe(created.id);

    const missing = await restError(
      eg.systemTopicEventSubscriptions.beginCreateOrUpdateAndWait(
        RG,
        'evgt-vault',
        'no-such-function',
        { ...subscription, destination: { ...subscription.destination, resourceId: `${siteId}/functions/nothere` } },
        FAST,
      ),
    );
    expect(missing.statusCode).toBe(400);
    expect(missing.message).toMatch(/^Destination endpoint not found\./);
  });
});

describe('storage by its production host name', () => {
  it('reaches Azurite at https://<account>.table.core.windows.net through the proxy with a bearer token', async () => {
    const client = new TableClient(`https://${ACCOUNT}.table.core.windows.net`, 'deploycheck', credential);
    await client.createTable();
    await client.createEntity({ partitionKey: 'p', rowKey: 'r', value: 'v' });
    expect((await client.getEntity<{ value: string }>('p', 'r')).value).toBe('v');
    expect(target.azurite?.accounts.map((a) => a.name)).toContain(ACCOUNT);
    expect(target.sitePrincipalId).toBe(EMULATOR_PRINCIPAL_ID);
  });
});
