/**
 * End to end: `npm run deploy` (the compiled CLI, `node dist/cli/broker.js deploy`, as the script
 * runs it; `npm test` builds first) against the emulated Azure Resource Manager, SCM site and
 * Azurite, through the standard variables only (HTTPS_PROXY, the managed-identity endpoint as the
 * deployer's sign-in). From nothing; again (no change); a changed setting (shown by --what-if, then
 * one update); and a run that fails half way, then resumes.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { ApplicationInsightsManagementClient } from '@azure/arm-appinsights';
import { WebSiteManagementClient } from '@azure/arm-appservice';
import { EventGridManagementClient } from '@azure/arm-eventgrid';
import { ResourceManagementClient } from '@azure/arm-resources';
import { ManagedIdentityCredential } from '@azure/identity';
import { startDeploymentTarget, type DeploymentTarget } from '../../local/emulators/deploymentTarget';
import { useLocalAzureInProcess } from '../support/inProcessAzure';
import { ROLES } from '../../cli/deploy/access';
import { SECRET_EVENT_TYPES } from '../../cli/deploy/events';
import { APPLICATION_READWRITE_OWNEDBY, PRINCIPAL_KNOWN_AFTER_CREATE } from '../../cli/deploy/entraCommands';

const CLI = path.resolve(__dirname, '../../dist/cli/broker.js');
const RG = 'rg-broker';
const APP = 'contoso-broker';
const ACCOUNT = 'contosobrokerst';
const RESUME_APP = 'contoso-broker2';
const RESUME_ACCOUNT = 'contosobroker2st';

let target: DeploymentTarget;
let dir: string;
/** An Event Grid custom topic that exists before the deployment: its notificationTopic. */
let topic: { id: string; endpoint: string };
/** A user-assigned identity made before the deployment (the resumed app uses it instead of its own). */
let identity: { id: string; principalId: string; clientId: string };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function deploy(file: string, ...flags: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, 'deploy', file, ...flags],
      { env: { PATH: process.env.PATH ?? '', ...target.env }, cwd: os.tmpdir(), timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

function deploymentFile(
  name: string,
  patch: {
    appName?: string;
    storageAccount?: string;
    identity?: string;
    rotation?: { identityName?: string; targets?: Record<string, string> };
    settings?: Record<string, unknown>;
  } = {},
): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    JSON.stringify({
      subscriptionId: target.subscriptionId,
      resourceGroup: RG,
      location: 'westeurope',
      appName: patch.appName ?? APP,
      storageAccount: patch.storageAccount ?? ACCOUNT,
      vaults: { default: target.rbacVault.id, partner: target.accessPolicyVault.id },
      notificationTopic: topic.id,
      ...(patch.identity ? { identity: patch.identity } : {}),
      ...(patch.rotation ? { rotation: patch.rotation } : {}),
      events: { schema: 'CloudEventSchemaV1_0' },
      settings: {
        ACCESS_POLICY: {
          callers: [
            { name: 'erp', identities: [{ apiKeySha256: sha('erp-key') }], allow: ['erp-*'] },
            { name: 'ops', identities: [{ apiKeySha256: sha('ops-key') }], allow: [], operator: true },
          ],
        },
        CACHE_TTL_SECONDS: 300,
        ...patch.settings,
      },
    }),
  );
  return file;
}

/** ARM writes and publishes so far (reads, list-keys and the smoke test's calls are not changes). */
function writes(): number {
  const arm = target.arm;
  return (
    arm.requestCount({ host: 'management.azure.com', method: 'PUT' }) +
    arm.requestCount({ host: 'management.azure.com', method: 'PATCH' }) +
    arm.requestCount({ host: 'management.azure.com', method: 'DELETE' }) +
    arm.requestCount({ operation: 'scm.publish' })
  );
}

const resourceId = (type: string, name: string): string =>
  `/subscriptions/${target.subscriptionId}/resourceGroups/${RG}/providers/${type}/${name}`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'deploy-e2e-'));
  target = await startDeploymentTarget({
    stateDir: dir,
    storageAccounts: [ACCOUNT, RESUME_ACCOUNT],
    sitePath: process.env.PATH,
    lroPendingPolls: 0,
    log: () => undefined,
  });
  const restore = useLocalAzureInProcess(target.azure);
  try {
    const credential = new ManagedIdentityCredential({ clientId: target.deployer.clientId });
    await new ResourceManagementClient(credential, target.subscriptionId).resourceGroups.createOrUpdate('rg-notify', {
      location: 'westeurope',
    });
    const created = await new EventGridManagementClient(credential, target.subscriptionId).topics.beginCreateOrUpdateAndWait(
      'rg-notify',
      'broker-notifications',
      { location: 'westeurope' },
      { updateIntervalInMs: 5 },
    );
    topic = { id: created.id ?? '', endpoint: created.endpoint ?? '' };
    const made = await new ResourceManagementClient(credential, target.subscriptionId).resources.beginCreateOrUpdateByIdAndWait(
      `/subscriptions/${target.subscriptionId}/resourceGroups/rg-notify/providers/Microsoft.ManagedIdentity/userAssignedIdentities/broker-identity`,
      '2023-01-31',
      { location: 'westeurope' },
    );
    const props = made.properties as { principalId: string; clientId: string };
    identity = { id: made.id ?? '', principalId: props.principalId, clientId: props.clientId };
  } finally {
    restore();
  }
  // As in a subscription that never had a Function App or a Key Vault event subscription.
  target.arm.unregisterProviders('Microsoft.Web', 'Microsoft.EventGrid');
}, 120_000);

afterAll(async () => {
  await target?.stop();
});

describe('npm run deploy', () => {
  it('--what-if from nothing lists what it would create and changes nothing', async () => {
    const before = writes();
    const run = await deploy(deploymentFile('deploy.json'), '--what-if');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('+ resource provider Microsoft.Web: create');
    expect(run.stdout).toContain('= resource provider Microsoft.Storage');
    expect(run.stdout).toContain(`+ resource group ${RG}: create`);
    expect(run.stdout).toContain(`+ storage account ${ACCOUNT}: create`);
    expect(run.stdout).toContain(`+ Function App ${APP}: create`);
    expect(run.stdout).toMatch(/\+ code package of contoso-broker \([0-9a-f]{12}\): create/);
    expect(run.stdout).toMatch(/\d+ to create, 0 to update, 3 unchanged\. --what-if: nothing was changed\./);
    expect(writes()).toBe(before);
  }, 240_000);

  it('from nothing: creates everything, publishes the package, subscribes the vaults and passes its smoke test', async () => {
    const run = await deploy(deploymentFile('deploy.json'));
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/\+ resource provider Microsoft\.Web: created/);
    expect(run.stdout).toMatch(/\+ resource provider Microsoft\.EventGrid: created/);
    expect(run.stdout).toContain('GET /api/openapi.json: 200');
    expect(run.stdout).toMatch(/Health: (ok|warning)/);
    // A new site allows basic publishing on both endpoints: the deployment turns both off (2 updates).
    expect(run.stdout).toContain(`~ basic publishing credentials (scm) of ${APP}: updated`);
    expect(run.stdout).toMatch(/Done: \d+ created, 2 updated, 3 unchanged/);

    const account = target.arm.resource(resourceId('Microsoft.Storage/storageAccounts', ACCOUNT));
    expect(account?.['properties']).toMatchObject({
      allowSharedKeyAccess: false,
      minimumTlsVersion: 'TLS1_2',
      allowBlobPublicAccess: false,
    });
    const component = target.arm.resource(resourceId('Microsoft.Insights/components', APP));
    expect(String((component?.['properties'] as Record<string, unknown>)['WorkspaceResourceId']).toLowerCase()).toBe(
      resourceId('Microsoft.OperationalInsights/workspaces', `${APP}-logs`).toLowerCase(),
    );
    // Local authentication off: only an identity with Monitoring Metrics Publisher can send telemetry.
    expect((component?.['properties'] as Record<string, unknown>)['DisableLocalAuth']).toBe(true);
    const site = target.arm.resource(resourceId('Microsoft.Web/sites', APP));
    expect(site).toMatchObject({ kind: 'functionapp,linux', identity: { type: 'SystemAssigned' } });
    // What was sent passed the emulator's Flex Consumption refusals; the configuration keeps no FTP setting.
    expect(target.arm.siteConfig(APP)).toEqual({ minTlsVersion: '1.2' });
    expect(target.arm.basicPublishing(APP)).toEqual({ scm: false, ftp: false });
    expect((site?.['properties'] as Record<string, unknown>)['functionAppConfig']).toMatchObject({
      runtime: { name: 'node', version: '22' },
      deployment: { storage: { authentication: { type: 'SystemAssignedIdentity' } } },
    });

    const settings = target.arm.appSettings(APP) ?? {};
    expect(settings).toMatchObject({
      AzureWebJobsStorage__accountName: ACCOUNT,
      KEY_VAULT_URI: target.rbacVault.uri,
      KEY_VAULT_ALIASES: `partner=${target.accessPolicyVault.uri}`,
      APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD',
      NOTIFY_EVENTGRID_ENDPOINT: topic.endpoint,
    });
    expect(topic.endpoint).toBe('https://broker-notifications.westeurope-1.eventgrid.azure.net/api/events');
    expect(settings['APPLICATIONINSIGHTS_CONNECTION_STRING']).toMatch(/^InstrumentationKey=/);
    expect(Object.keys(settings)).not.toContain('FUNCTIONS_WORKER_RUNTIME');
    expect(Object.keys(settings).some((k) => k === 'AzureWebJobsStorage')).toBe(false);

    // Roles: the app on storage and the RBAC vault; an access policy on the other vault; the deployer on the health table.
    const app = target.sitePrincipalId.toLowerCase();
    const assignments = target.arm
      .allRoleAssignments()
      .map((a) => ({ ...a, principalId: a.principalId.toLowerCase(), scope: a.scope.toLowerCase() }));
    const has = (principal: string, role: string, scope: string): boolean =>
      assignments.some((a) => a.principalId === principal && a.roleDefinitionGuid === role && a.scope === scope.toLowerCase());
    const accountId = resourceId('Microsoft.Storage/storageAccounts', ACCOUNT);
    expect(has(app, ROLES['Storage Blob Data Owner'], accountId)).toBe(true);
    expect(has(app, ROLES['Storage Table Data Contributor'], accountId)).toBe(true);
    expect(has(app, ROLES['Storage Queue Data Contributor'], accountId)).toBe(false);
    expect(has(app, ROLES['Key Vault Secrets User'], target.rbacVault.id)).toBe(true);
    expect(has(app, ROLES.Reader, target.accessPolicyVault.id)).toBe(true);
    expect(has(app, ROLES['EventGrid Data Sender'], topic.id)).toBe(true);
    expect(has(app, ROLES['Monitoring Metrics Publisher'], resourceId('Microsoft.Insights/components', APP))).toBe(true);
    expect(has(app, ROLES['Key Vault Secrets User'], target.accessPolicyVault.id)).toBe(false);
    expect(
      has(
        target.deployer.principalId.toLowerCase(),
        ROLES['Storage Table Data Reader'],
        `${accountId}/tableServices/default/tables/brokerhealth`,
      ),
    ).toBe(true);
    const policy = target.arm.getVault(target.accessPolicyVault.name).accessPolicies.find((p) => p.objectId.toLowerCase() === app);
    expect(policy?.secrets.map((s) => s.toLowerCase()).sort()).toEqual(['get', 'list']);
    // No rotation asked: no rotation identity, no setting, no writer role, no Entra commands.
    expect(target.arm.resource(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', `${APP}-rotation`))).toBeUndefined();
    expect(Object.keys(settings)).not.toContain('ROTATION_IDENTITY_CLIENT_ID');
    expect(assignments.some((a) => a.roleDefinitionGuid === ROLES['Key Vault Secrets Officer'])).toBe(false);
    expect(run.stdout).not.toContain('Needs a Microsoft Entra admin');

    // The package: the build and the production dependencies, none of the dev ones.
    const pkg = target.arm.deployedPackage(APP);
    expect(pkg?.publishes).toBe(1);
    const files = [...(pkg?.files?.keys() ?? [])];
    expect(files).toEqual(
      expect.arrayContaining(['host.json', 'package.json', 'dist/functions/index.js', 'node_modules/@azure/functions/package.json']),
    );
    expect(
      files.some(
        (f) => f.startsWith('node_modules/jest/') || f.startsWith('node_modules/typescript/') || f.startsWith('node_modules/azurite/'),
      ),
    ).toBe(false);
    expect(files.some((f) => f.startsWith('dist/local/') || f.startsWith('dist/cli/') || f.endsWith('.ts'))).toBe(false);

    // One subscription per vault to secretEvents: the three secret events, 30 attempts in 24 h, dead letters through the identity.
    for (const vault of [target.rbacVault, target.accessPolicyVault]) {
      const subscription = target.arm.resource(
        // Beside the vault, in its resource group.
        `${vault.id.replace(/\/providers\/.*$/, '')}/providers/Microsoft.EventGrid/systemTopics/${vault.name}-events/eventSubscriptions/secret-broker-${APP}`,
      );
      expect(subscription?.['properties']).toMatchObject({
        destination: {
          endpointType: 'AzureFunction',
          properties: { resourceId: expect.stringMatching(/\/sites\/contoso-broker\/functions\/secretEvents$/) },
        },
        filter: { includedEventTypes: expect.arrayContaining([...SECRET_EVENT_TYPES]) },
        eventDeliverySchema: 'CloudEventSchemaV1_0',
        retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 },
        deadLetterWithResourceIdentity: { deadLetterDestination: { properties: { blobContainerName: 'eventgrid-deadletters' } } },
      });
    }
  }, 240_000);

  it('a second run with the same file changes nothing', async () => {
    const before = writes();
    const run = await deploy(deploymentFile('deploy.json'));
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Done: 0 created, 0 updated, \d+ unchanged/);
    expect(run.stdout).not.toMatch(/^[+~] /m);
    expect(writes()).toBe(before);
    expect(target.arm.deployedPackage(APP)?.publishes).toBe(1);
  }, 240_000);

  it('a changed setting, one added by hand, a component that still takes its connection string: --what-if names them, the run makes those updates', async () => {
    const file = deploymentFile('deploy-changed.json', { settings: { CACHE_TTL_SECONDS: 120 } });
    const restore = useLocalAzureInProcess(target.azure);
    try {
      const credential = new ManagedIdentityCredential({ clientId: target.deployer.clientId });
      // As the portal (or az functionapp config appsettings set) would: the deployment file knows nothing of it.
      const web = new WebSiteManagementClient(credential, target.subscriptionId);
      const current = (await web.webApps.listApplicationSettings(RG, APP)).properties ?? {};
      await web.webApps.updateApplicationSettings(RG, APP, { properties: { ...current, BY_HAND: 'portal' } });
      // A component from an older deployment, local authentication still on.
      const insights = new ApplicationInsightsManagementClient(credential, target.subscriptionId);
      const component = await insights.components.get(RG, APP);
      await insights.components.createOrUpdate(RG, APP, { ...component, kind: component.kind ?? 'web', disableLocalAuth: false });
    } finally {
      restore();
    }
    const before = writes();
    const whatIf = await deploy(file, '--what-if');
    expect(whatIf.code).toBe(0);
    expect(whatIf.stdout).toContain(
      `~ app settings of ${APP}: update\n    BY_HAND: will be removed (not in the deployment file)\n    CACHE_TTL_SECONDS: changed`,
    );
    expect(whatIf.stdout).not.toContain('portal');
    // Local authentication goes off last, once the app has its token setting, its role and its code.
    expect(whatIf.stdout).toMatch(
      new RegExp(
        `code package of ${APP}[^\\n]*\\n~ Application Insights ${APP} \\(local authentication off\\): update\\n    disableLocalAuth: false -> true`,
      ),
    );
    expect(whatIf.stdout).toMatch(/0 to create, 2 to update, \d+ unchanged/);
    expect(whatIf.stdout).not.toContain('120');
    expect(writes()).toBe(before);

    const run = await deploy(file);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Done: 0 created, 2 updated, \d+ unchanged/);
    expect(writes()).toBe(before + 2);
    const component = target.arm.resource(resourceId('Microsoft.Insights/components', APP));
    expect((component?.['properties'] as Record<string, unknown>)['DisableLocalAuth']).toBe(true);
    expect(target.arm.requestCount({ host: 'management.azure.com', method: 'PUT', path: /\/config\/appsettings$/i })).toBeGreaterThan(0);
    expect(target.arm.appSettings(APP)?.['CACHE_TTL_SECONDS']).toBe('120');
    expect(target.arm.appSettings(APP)).not.toHaveProperty('BY_HAND');
    expect(run.stdout).toContain('BY_HAND: removed (not in the deployment file)');
  }, 240_000);

  it('rotation asked: --what-if lists the identity, its vault access and the Entra commands; the run creates them, the app keeps its read-only role', async () => {
    const targetApp = '5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e';
    const file = deploymentFile('deploy-rotation.json', {
      settings: { CACHE_TTL_SECONDS: 120 },
      rotation: { targets: { 'erp-client-secret': targetApp, 'partner/erp-client-secret-b': targetApp } },
    });
    const identityName = `${APP}-rotation`;
    const identityId = resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', identityName);
    const before = writes();
    const whatIf = await deploy(file, '--what-if');
    expect(whatIf.stderr).toBe('');
    expect(whatIf.code).toBe(0);
    expect(whatIf.stdout).toContain('= resource provider Microsoft.ManagedIdentity');
    expect(whatIf.stdout).toContain(`+ user-assigned identity ${identityName} (rotation): create`);
    expect(whatIf.stdout).toContain(
      `+ role Key Vault Secrets Officer for rotation identity ${identityName} on ${target.rbacVault.name}: create`,
    );
    expect(whatIf.stdout).toContain(
      `+ access policy for rotation identity ${identityName} on vault ${target.accessPolicyVault.name}: create`,
    );
    expect(whatIf.stdout).toMatch(
      new RegExp(`~ Function App ${APP}: update\\n    identity\\.type: SystemAssigned -> SystemAssigned, UserAssigned\\n`),
    );
    expect(whatIf.stdout).toContain(`~ app settings of ${APP}: update\n    ROTATION_IDENTITY_CLIENT_ID: added`);
    // The commands an Entra admin runs, listed already, the principal id still to come.
    expect(whatIf.stdout).toContain(`Needs a Microsoft Entra admin (not run by this tool): for rotation identity ${identityName}`);
    expect(whatIf.stdout).toContain(`\\"principalId\\":\\"${PRINCIPAL_KNOWN_AFTER_CREATE}\\"`);
    expect(whatIf.stdout).toContain(`/applications/${targetApp}/owners/$ref`);
    // One owner command per distinct application, though two secrets name it.
    expect(whatIf.stdout.split(`/applications/${targetApp}/owners/$ref`)).toHaveLength(2);
    expect(writes()).toBe(before);
    expect(target.arm.resource(identityId)).toBeUndefined();

    const run = await deploy(file);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const made = target.arm.resource(identityId);
    const { principalId, clientId } = made?.['properties'] as { principalId: string; clientId: string };
    expect(made).toMatchObject({ type: 'Microsoft.ManagedIdentity/userAssignedIdentities', location: 'westeurope' });
    // Attached beside the system identity, which the resolve path keeps using.
    const site = target.arm.resource(resourceId('Microsoft.Web/sites', APP));
    expect(site?.['identity']).toMatchObject({
      type: 'SystemAssigned, UserAssigned',
      principalId: target.sitePrincipalId,
      userAssignedIdentities: { [identityId]: { principalId, clientId } },
    });
    const settings = target.arm.appSettings(APP) ?? {};
    expect(settings['ROTATION_IDENTITY_CLIENT_ID']).toBe(clientId);
    expect(JSON.parse(settings['ROTATION_TARGETS'] ?? 'null')).toEqual({
      'erp-client-secret': targetApp,
      'partner/erp-client-secret-b': targetApp,
    });
    expect(Object.keys(settings)).not.toContain('AZURE_CLIENT_ID');
    const assignments = target.arm.allRoleAssignments();
    const holds = (principal: string, role: string, scope: string): boolean =>
      assignments.some(
        (a) =>
          a.principalId.toLowerCase() === principal.toLowerCase() &&
          a.roleDefinitionGuid === role &&
          a.scope.toLowerCase() === scope.toLowerCase(),
      );
    expect(holds(principalId, ROLES['Key Vault Secrets Officer'], target.rbacVault.id)).toBe(true);
    expect(holds(target.sitePrincipalId, ROLES['Key Vault Secrets Officer'], target.rbacVault.id)).toBe(false);
    expect(holds(target.sitePrincipalId, ROLES['Key Vault Secrets User'], target.rbacVault.id)).toBe(true);
    expect(assignments.filter((a) => a.principalId.toLowerCase() === principalId.toLowerCase())).toHaveLength(1);
    const policies = target.arm.getVault(target.accessPolicyVault.name).accessPolicies;
    const writerPolicy = policies.find((p) => p.objectId.toLowerCase() === principalId.toLowerCase());
    expect(writerPolicy?.secrets.map((x) => x.toLowerCase()).sort()).toEqual(['get', 'list', 'set']);
    const appPolicy = policies.find((p) => p.objectId.toLowerCase() === target.sitePrincipalId.toLowerCase());
    expect(appPolicy?.secrets.map((x) => x.toLowerCase()).sort()).toEqual(['get', 'list']);
    // The identity and its vault access come before the app is told its client id.
    expect(run.stdout.indexOf(`role Key Vault Secrets Officer for rotation identity ${identityName}`)).toBeLessThan(
      run.stdout.indexOf(`app settings of ${APP}`),
    );
    // Printed, with the principal id filled in, never run.
    expect(run.stdout).toContain(`(principal id ${principalId})`);
    expect(run.stdout).toContain(`\\"principalId\\":\\"${principalId}\\"`);
    expect(run.stdout).toContain(`\\"appRoleId\\":\\"${APPLICATION_READWRITE_OWNEDBY}\\"`);
    expect(run.stdout).toContain(
      `az rest --method post --url 'https://graph.microsoft.com/v1.0/applications/${targetApp}/owners/$ref' --headers Content-Type=application/json --body '{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/${principalId}"}'`,
    );
    expect(target.azure.graph.requestCount()).toBe(0);
    expect(run.stdout).toMatch(/Health: (ok|warning)/);

    // Again: nothing changes, and the commands are listed once more.
    const again = await deploy(file, '--what-if');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/0 to create, 0 to update, \d+ unchanged/);
    expect(again.stdout).toContain(`\\"principalId\\":\\"${principalId}\\"`);
  }, 300_000);

  it('a run with a user-assigned identity that fails half way names the resource and what Azure said; the same command then finishes', async () => {
    const file = deploymentFile('deploy-resume.json', { appName: RESUME_APP, storageAccount: RESUME_ACCOUNT, identity: identity.id });
    target.arm.injectFailure({
      method: 'PUT',
      path: /\/providers\/Microsoft\.Authorization\/roleAssignments\//i,
      status: 500,
      code: 'InternalServerError',
      message: 'Encountered internal server error. Diagnostic information: timestamp 20261201T120000Z.',
      // More than the SDK's own retries (3), so the step itself fails.
      times: 5,
    });
    const failed = await deploy(file);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /error: role Storage Blob Data Owner for app contoso-broker2 \(identity broker-identity\) on contosobroker2st: create failed: 500 InternalServerError: Encountered internal server error/,
    );
    expect(failed.stderr).toContain('run the same command again');
    // Stopped there: a named identity gets its access before the app exists, so the app does not yet.
    expect(target.arm.resource(resourceId('Microsoft.Storage/storageAccounts', RESUME_ACCOUNT))).toBeDefined();
    expect(target.arm.resource(resourceId('Microsoft.Web/sites', RESUME_APP))).toBeUndefined();
    expect(target.arm.deployedPackage(RESUME_APP)?.publishes ?? 0).toBe(0);

    // The waits Azure is known for, met on the way: a new identity not yet replicated to Entra ID,
    // and a blob role granted moments ago not yet applied to the publish.
    target.arm.injectFailure({
      method: 'PUT',
      path: /\/providers\/Microsoft\.Authorization\/roleAssignments\//i,
      status: 400,
      code: 'PrincipalNotFound',
      message: `Principal ${target.sitePrincipalId.replace(/-/g, '')} does not exist in the directory ${target.subscriptionId}.`,
    });
    target.arm.injectFailure({
      method: 'POST',
      path: /^\/api\/publish$/i,
      status: 403,
      code: 'AuthorizationPermissionMismatch',
      message: 'This request is not authorized to perform this operation using this permission.',
    });
    const resumed = await deploy(file);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain(
      `app ${RESUME_APP} (identity broker-identity) is not known to Microsoft Entra ID yet; retrying in 10 s`,
    );
    expect(resumed.stdout).toContain('the app identity cannot write its deployment container yet');
    expect(resumed.stdout).toContain(`+ Function App ${RESUME_APP}: created`);
    expect(resumed.stdout.indexOf(`role Storage Blob Data Owner for app ${RESUME_APP}`)).toBeLessThan(
      resumed.stdout.indexOf(`Function App ${RESUME_APP}`),
    );
    expect(resumed.stdout).toContain(
      `+ role Storage Blob Data Owner for app ${RESUME_APP} (identity broker-identity) on ${RESUME_ACCOUNT}: created`,
    );
    expect(resumed.stdout).toMatch(/Health: (ok|warning)/);
    expect(target.arm.deployedPackage(RESUME_APP)?.publishes).toBe(1);

    // The named identity is the app's only one, and everything uses it: the code package, storage, vaults, telemetry.
    const site = target.arm.resource(resourceId('Microsoft.Web/sites', RESUME_APP));
    expect(site?.['identity']).toMatchObject({
      type: 'UserAssigned',
      userAssignedIdentities: { [identity.id]: { principalId: identity.principalId } },
    });
    expect((site?.['properties'] as Record<string, unknown>)['functionAppConfig']).toMatchObject({
      deployment: { storage: { authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id } } },
    });
    expect(target.arm.appSettings(RESUME_APP)).toMatchObject({
      AZURE_CLIENT_ID: identity.clientId,
      AzureWebJobsStorage__credential: 'managedidentity',
      AzureWebJobsStorage__clientId: identity.clientId,
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: `ClientId=${identity.clientId};Authorization=AAD`,
    });
    const roles = target.arm.allRoleAssignments().filter((a) => a.principalId.toLowerCase() === identity.principalId.toLowerCase());
    expect(roles.map((a) => a.roleDefinitionGuid).sort()).toEqual(
      [
        ROLES['Storage Blob Data Owner'],
        ROLES['Storage Table Data Contributor'],
        ROLES.Reader,
        ROLES['Key Vault Secrets User'],
        ROLES.Reader,
        ROLES['Monitoring Metrics Publisher'],
        ROLES['EventGrid Data Sender'],
      ].sort(),
    );
    // The vault's one system topic is reused; each app has its own subscription on it.
    expect(resumed.stdout).toContain(`= Event Grid system topic ${target.rbacVault.name}-events (vault ${target.rbacVault.name})`);
    const topicId = `${target.rbacVault.id.replace(/\/providers\/.*$/, '')}/providers/Microsoft.EventGrid/systemTopics/${target.rbacVault.name}-events`;
    for (const app of [APP, RESUME_APP]) {
      const subscription = target.arm.resource(`${topicId}/eventSubscriptions/secret-broker-${app}`);
      expect(JSON.stringify(subscription?.['properties'])).toContain(`/sites/${app}/functions/secretEvents`);
    }
  }, 300_000);
});
