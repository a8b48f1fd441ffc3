/**
 * `npm run deploy -- <deployment file> [--what-if]`: everything the broker needs in Azure, in
 * order, each step idempotent (docs/deploying.md, "What it creates, in order"). `--what-if` reads and compares only.
 */
import type { TokenCredential } from '@azure/core-auth';
import { HEALTH_TABLE } from '../../shared/health/healthReportStore';
import type { HealthReport } from '../../shared/health/healthReport';
import { formatHealthTable } from '../healthTable';
import { assignRole, deployerPrincipal, grantAccessPolicy, type Principal } from './access';
import { createAzureClients } from './azureClients';
import { summarise, type Change } from './changes';
import { collectPackage, zipPackage, type CodePackage } from './codePackage';
import { appSettingsFor, TOPIC_ID, type Deployment } from './deploymentFile';
import { entraAdminCommands } from './entraCommands';
import { subscribeVault, type VaultFacts } from './events';
import {
  appSettings,
  basicPublishingOff,
  functionApp,
  healthTable,
  localAuthOff,
  monitoring,
  PACKAGE_TAG,
  resourceGroup,
  rotationIdentity,
  storage,
  userAssignedIdentity,
  type Ctx,
} from './infrastructure';
import { publishPackage } from './oneDeploy';
import { DEPLOYMENT_PROVIDERS, EVENT_PROVIDER, IDENTITY_PROVIDER, registerProviders } from './providers';
import { DeployError, reconcile, step, type Progress } from './reconcile';
import { smokeTest } from './smokeTest';

/** How long a publish (including a blob role still being applied) and the smoke test may take. */
const PUBLISH_DEADLINE_MS = 15 * 60_000;
const SMOKE_TEST_DEADLINE_MS = 10 * 60_000;
const POLL_INTERVAL_MS = 2_000;

export interface DeployOptions {
  readonly whatIf: boolean;
  readonly credential: TokenCredential;
  /** The project root: `host.json`, `package.json`, `dist/`, `node_modules/` (the code package's allow-list). */
  readonly root: string;
  readonly progress: Progress;
  readonly colour: boolean;
}

export interface DeployResult {
  readonly changes: readonly Change[];
  /** The smoke test's report; undefined under `--what-if` or with `smokeTest: false`. */
  readonly report: HealthReport | undefined;
}

interface VaultDetails extends VaultFacts {
  readonly uri: string;
  readonly rbac: boolean;
  readonly tenantId: string;
}

export async function deploy(d: Deployment, o: DeployOptions): Promise<DeployResult> {
  const clients = createAzureClients(o.credential, d.subscriptionId);
  const changes: Change[] = [];
  const ctx: Ctx = { run: { whatIf: o.whatIf, progress: o.progress, changes }, clients, d };
  const say = (text: string): void => o.progress.line(text);
  // Rotation adds one phase: its identity and that identity's vault access, before the app names it.
  const total = d.rotation ? 9 : 8;
  let phases = 0;
  const phase = (text: string): void => say(`\n[${++phases}/${total}] ${text}`);
  say(
    `${o.whatIf ? 'What if: deploying' : 'Deploying'} ${d.appName} to resource group ${d.resourceGroup} (${d.location}), subscription ${d.subscriptionId}`,
  );

  // Everything that can be checked before a change: the vaults exist and are readable, the
  // settings pass the app's own validation, the code package is built.
  const vaults: VaultDetails[] = [];
  for (const vault of d.vaults) {
    const found = await step(`vault ${vault.name} (${vault.alias})`, 'read', () =>
      clients.keyVault(vault.subscriptionId).vaults.get(vault.resourceGroup, vault.name),
    );
    vaults.push({
      ...vault,
      uri: found.properties.vaultUri ?? `https://${vault.name}.vault.azure.net/`,
      rbac: found.properties.enableRbacAuthorization === true,
      tenantId: found.properties.tenantId,
      location: found.location ?? d.location,
    });
  }
  const notifyEndpoint = d.notificationTopic ? await topicEndpoint(ctx, d.notificationTopic) : undefined;
  const identity = d.identity ? await userAssignedIdentity(ctx, d.identity) : undefined;
  const vaultUris = new Map(vaults.map((x) => [x.alias, x.uri]));
  appSettingsFor(d, { vaultUris, appInsightsConnectionString: undefined, notifyEndpoint, identityClientId: identity?.clientId });
  const pkg = collectPackage(o.root);
  say(
    `Checked: ${vaults.length} vault(s), the settings, the code package (${pkg.files.length} files, ${(pkg.bytes / 1048576).toFixed(1)} MB)`,
  );

  phase('Resource providers and resource group');
  await registerProviders(ctx, d.subscriptionId, [
    ...DEPLOYMENT_PROVIDERS,
    ...(d.rotation ? [IDENTITY_PROVIDER] : []),
    ...(vaults.some((v) => v.subscriptionId.toLowerCase() === d.subscriptionId.toLowerCase()) ? [EVENT_PROVIDER] : []),
  ]);
  for (const sub of new Set(vaults.map((v) => v.subscriptionId.toLowerCase()))) {
    if (sub !== d.subscriptionId.toLowerCase()) await registerProviders(ctx, sub, [EVENT_PROVIDER]);
  }
  await resourceGroup(ctx);
  phase('Storage (shared keys off)');
  const account = await storage(ctx);
  await healthTable(ctx, HEALTH_TABLE, account !== undefined);
  phase('Log Analytics and Application Insights');
  const telemetry = await monitoring(ctx);
  const storageId =
    account?.id ??
    `/subscriptions/${d.subscriptionId}/resourceGroups/${d.resourceGroup}/providers/Microsoft.Storage/storageAccounts/${d.storageAccount}`;
  const grantAccess = async (app: Principal): Promise<void> => {
    phase(`Access for the app's identity`);
    // Learn, "Connecting to host storage with an identity": the host needs Storage Blob Data Owner
    // (host storage, timer checkpoints, the Flex deployment container); Queue Data Contributor only
    // for blob triggers and Durable Functions, which this app has not. Table Data Contributor is the
    // app's own tables (coherence, delivery ledger, health reports, shared cache) and the host's
    // diagnostic events.
    for (const role of ['Storage Blob Data Owner', 'Storage Table Data Contributor'] as const) {
      await assignRole(ctx, app, role, storageId);
    }
    for (const vault of vaults) {
      // Reader: the health check reads the vault's firewall, soft delete and role assignments.
      await assignRole(ctx, app, 'Reader', vault.id);
      if (vault.rbac) await assignRole(ctx, app, 'Key Vault Secrets User', vault.id);
      else await grantAccessPolicy(ctx, app, vault);
    }
    // Telemetry goes in with the app's Entra token: the component takes no connection-string ingestion.
    await assignRole(ctx, app, 'Monitoring Metrics Publisher', telemetry.componentId);
    if (d.notificationTopic) await assignRole(ctx, app, 'EventGrid Data Sender', d.notificationTopic);
    const deployer = d.smokeTest ? await deployerPrincipal(ctx) : undefined;
    if (deployer?.objectId)
      await assignRole(ctx, deployer, 'Storage Table Data Reader', `${storageId}/tableServices/default/tables/${HEALTH_TABLE}`);
  };
  const principal = (objectId: string | undefined): Principal => ({
    label: identity ? `app ${d.appName} (identity ${identity.name})` : `app ${d.appName}`,
    objectId,
    type: 'ServicePrincipal',
  });
  // A named identity is known before the app: it gets its access first, so an app switched to it
  // never runs without (its old identity goes with the site's update). The app's own identity exists
  // only once the app does.
  if (identity) await grantAccess(principal(identity.principalId));
  // The rotation identity, and its write access to every vault, exist before the app is told its
  // client id: rotation never starts without the rights it needs (docs/deploying.md).
  let rotation: Awaited<ReturnType<typeof rotationIdentity>>;
  if (d.rotation) {
    phase('Rotation identity (Key Vault Secrets Officer on each vault)');
    rotation = await rotationIdentity(ctx);
    const writer: Principal = {
      label: `rotation identity ${d.rotation.identityName}`,
      objectId: rotation?.principalId,
      type: 'ServicePrincipal',
    };
    for (const vault of vaults) {
      // Learn: "Azure built-in roles for Security": Secrets Officer may set secrets and their attributes
      // (a new version, the old one disabled); access-policy vaults get Get, List and Set instead.
      if (vault.rbac) await assignRole(ctx, writer, 'Key Vault Secrets Officer', vault.id);
      else await grantAccessPolicy(ctx, writer, vault, ['get', 'list', 'set']);
    }
  }
  phase('Function App (Flex Consumption, Linux, Node.js 22)');
  const site = await functionApp(ctx, account, identity, d.rotation ? { id: rotation?.id ?? d.rotation.identityId } : undefined);
  const settings = appSettingsFor(d, {
    vaultUris,
    appInsightsConnectionString: telemetry.connectionString,
    notifyEndpoint,
    identityClientId: identity?.clientId,
    rotationClientId: rotation?.clientId,
  });
  await appSettings(ctx, settings, site !== undefined);
  await basicPublishingOff(ctx, site !== undefined);
  if (!identity) await grantAccess(principal(site?.identity?.principalId));

  phase('Code package (One Deploy)');
  await codePackage(ctx, pkg, site?.id, site?.tags?.[PACKAGE_TAG], scmHostOf(site, d));
  // Now that the app sends with its identity's token, an older component stops taking the connection string.
  await localAuthOff(ctx, telemetry);

  phase('Key Vault events to secretEvents');
  for (const vault of vaults) await subscribeVault(ctx, vault, site?.id, storageId);

  // What needs an Entra admin is printed, never run (docs/deploying.md, "Rotation").
  const adminSteps = d.rotation ? entraAdminCommands(d.rotation, rotation?.principalId) : [];
  let report: HealthReport | undefined;
  if (o.whatIf) {
    for (const line of adminSteps) say(line);
    say(`\n${summarise(changes)}. --what-if: nothing was changed.`);
    return { changes, report };
  }
  phase('Smoke test');
  if (!d.smokeTest) {
    say('  skipped (smokeTest: false)');
  } else {
    const host = site?.defaultHostName ?? `${d.appName}.azurewebsites.net`;
    const tableEndpoint = (account?.primaryEndpoints?.table ?? `https://${d.storageAccount}.table.core.windows.net/`).replace(/\/+$/, '');
    report = await step(`smoke test of ${host}`, 'run', () =>
      smokeTest({
        host,
        masterKey: async () => {
          const keys = await clients.web.webApps.listHostKeys(d.resourceGroup, d.appName);
          if (!keys.masterKey) throw new Error('the host has no master key');
          return keys.masterKey;
        },
        tableServiceUri: tableEndpoint,
        credential: o.credential,
        deadlineMs: SMOKE_TEST_DEADLINE_MS,
        pollIntervalMs: POLL_INTERVAL_MS,
        progress: say,
      }),
    );
    for (const line of formatHealthTable(report, { colour: o.colour })) say(`  ${line}`);
  }
  for (const line of adminSteps) say(line);
  say(
    `\nDone: ${summarise(changes).replace('to create', 'created').replace('to update', 'updated')}. https://${site?.defaultHostName ?? `${d.appName}.azurewebsites.net`}/api/openapi.json`,
  );
  return { changes, report };
}

/** The SCM (Kudu) host of the site: its Repository host name. */
function scmHostOf(site: { hostNameSslStates?: { name?: string; hostType?: string }[] } | undefined, d: Deployment): string {
  return site?.hostNameSslStates?.find((h) => h.hostType === 'Repository')?.name ?? `${d.appName}.scm.azurewebsites.net`;
}

async function topicEndpoint(ctx: Ctx, topicId: string): Promise<string> {
  const m = TOPIC_ID.exec(topicId) as RegExpExecArray;
  const [subscriptionId, rg, name] = [m[1] as string, m[2] as string, m[3] as string];
  const topic = await step(`Event Grid topic ${name}`, 'read', () => ctx.clients.eventGrid(subscriptionId).topics.get(rg, name));
  if (!topic.endpoint) throw new DeployError(`Event Grid topic ${name}`, 'has no endpoint');
  return topic.endpoint;
}

/** The package, sent only when its fingerprint differs from the one the app last took (a tag on the app). */
async function codePackage(
  ctx: Ctx,
  pkg: CodePackage,
  siteId: string | undefined,
  deployed: string | undefined,
  scmHost: string,
): Promise<void> {
  const { d, clients } = ctx;
  await reconcile(ctx.run, {
    resource: `code package of ${d.appName} (${pkg.fingerprint.slice(0, 12)})`,
    read: () => Promise.resolve(deployed === undefined ? undefined : deployed),
    desired: pkg.fingerprint,
    compare: (current) =>
      current === pkg.fingerprint ? [] : [{ path: 'package', from: current.slice(0, 12), to: pkg.fingerprint.slice(0, 12) }],
    apply: async () => {
      if (!siteId) throw new Error('the Function App does not exist');
      const zip = zipPackage(pkg);
      ctx.run.progress.line(`  publishing ${(zip.length / 1048576).toFixed(1)} MB to https://${scmHost}/api/publish`);
      await publishPackage({
        scmHost,
        zip,
        credential: clients.credential,
        deadlineMs: PUBLISH_DEADLINE_MS,
        pollIntervalMs: POLL_INTERVAL_MS,
        onWait: (why) => ctx.run.progress.line(`  ${why}`),
      });
      // Recorded only once the app runs the package: a publish that failed is sent again next time.
      await clients.resources.tagsOperations.updateAtScope(siteId, {
        operation: 'Merge',
        properties: { tags: { [PACKAGE_TAG]: pkg.fingerprint } },
      });
      return pkg.fingerprint;
    },
  });
}
