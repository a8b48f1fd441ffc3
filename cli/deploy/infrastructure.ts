/**
 * The deployment's own resources: resource group, storage (shared keys off), Log Analytics and
 * workspace-based Application Insights (local authentication off), the Flex Consumption plan and the
 * Function App with its identity (system-assigned, or the file's user-assigned one), app settings and
 * publishing policies. Each goes through {@link reconcile}.
 */
import type { Site } from '@azure/arm-appservice';
import type { StorageAccount } from '@azure/arm-storage';
import type { AzureClients } from './azureClients';
import { differences, sameLocation, settingDifferences, type Difference } from './changes';
import type { Deployment } from './deploymentFile';
import { DeployError, orAbsent, reconcile, step, type RunOptions } from './reconcile';

/** The blob container Flex Consumption deploys the code package to (named as azd names it). */
export const packageContainer = (d: Deployment): string => `app-package-${d.appName.toLowerCase()}`.slice(0, 63).replace(/-+$/, '');
/** The blob container Event Grid writes undeliverable events to. */
export const DEAD_LETTER_CONTAINER = 'eventgrid-deadletters';
/** Tag on the Function App: SHA-256 of the code package it last took, so an unchanged package is not sent again. */
export const PACKAGE_TAG = 'secret-broker-package';

export interface Ctx {
  readonly run: RunOptions;
  readonly clients: AzureClients;
  readonly d: Deployment;
}

const tagsOf = (d: Deployment): Record<string, string> => ({ 'secret-broker': d.appName, ...d.tags });
/**
 * A PUT replaces a resource's tags: keep the ones others set (policy, the portal, the code step)
 * and set ours over them.
 */
const mergedTags = (current: Record<string, string> | undefined, ours: Record<string, string>): Record<string, string> => ({
  ...current,
  ...ours,
});
const locationDiff = (want: string, have: string | undefined): Difference[] =>
  sameLocation(want, have) ? [] : [{ path: 'location', from: have, to: want }];

/**
 * A tracked resource of the deployment's group (location and tags), brought to `desired` plus the
 * deployment's tags in its region; `put` creates or updates it with the whole body.
 */
function trackedResource<T extends { location?: string; tags?: Record<string, string> }, D extends object>(
  ctx: Ctx,
  resource: string,
  get: () => Promise<T>,
  desired: D,
  put: (body: D & { location: string; tags: Record<string, string> }) => PromiseLike<T>,
  /** Sent when the resource is created, neither compared nor sent on an update (a later step sees to them). */
  onCreate: object = {},
): Promise<T | undefined> {
  const { d } = ctx;
  const tags = tagsOf(d);
  return reconcile<T>(ctx.run, {
    resource,
    read: () => orAbsent(get),
    desired: { ...desired, tags },
    compare: (current) => [...locationDiff(d.location, current.location), ...differences({ ...desired, tags }, current)],
    apply: async (current) =>
      put({ ...desired, ...(current ? {} : onCreate), location: d.location, tags: mergedTags(current?.tags, tags) }),
  });
}

export async function resourceGroup(ctx: Ctx): Promise<void> {
  const { clients, d } = ctx;
  const desired = { location: d.location, tags: tagsOf(d) };
  await reconcile(ctx.run, {
    resource: `resource group ${d.resourceGroup}`,
    read: () => orAbsent(() => clients.resources.resourceGroups.get(d.resourceGroup)),
    desired,
    compare: (rg) => [...locationDiff(d.location, rg.location), ...differences({ tags: desired.tags }, rg)],
    apply: (rg) =>
      clients.resources.resourceGroups.createOrUpdate(d.resourceGroup, {
        ...rg,
        location: rg?.location ?? d.location,
        tags: { ...rg?.tags, ...desired.tags },
      }),
  });
}

/** The storage account (shared-key access off), the package and dead-letter containers, and the health table. */
export async function storage(ctx: Ctx): Promise<StorageAccount | undefined> {
  const { clients, d } = ctx;
  // A PUT on an existing account updates the properties it names.
  const account = await trackedResource(
    ctx,
    `storage account ${d.storageAccount}`,
    () => clients.storage.storageAccounts.getProperties(d.resourceGroup, d.storageAccount),
    {
      sku: { name: 'Standard_LRS' as const },
      kind: 'StorageV2' as const,
      allowSharedKeyAccess: false,
      allowBlobPublicAccess: false,
      minimumTlsVersion: 'TLS1_2' as const,
      enableHttpsTrafficOnly: true,
    },
    (body) => clients.storage.storageAccounts.create(d.resourceGroup, d.storageAccount, body),
  );
  for (const container of [packageContainer(d), DEAD_LETTER_CONTAINER]) {
    await reconcile(ctx.run, {
      resource: `blob container ${d.storageAccount}/${container}`,
      read: () =>
        account
          ? orAbsent(() => clients.storage.blobContainers.get(d.resourceGroup, d.storageAccount, container))
          : Promise.resolve(undefined),
      desired: { publicAccess: 'None' },
      apply: () => clients.storage.blobContainers.create(d.resourceGroup, d.storageAccount, container, { publicAccess: 'None' }),
    });
  }
  return account;
}

/** The broker's health-report table, made ahead so the smoke test's reader role has a scope. */
export async function healthTable(ctx: Ctx, table: string, accountExists: boolean): Promise<void> {
  const { clients, d } = ctx;
  await reconcile(ctx.run, {
    resource: `table ${d.storageAccount}/${table}`,
    read: () =>
      accountExists ? orAbsent(() => clients.storage.table.get(d.resourceGroup, d.storageAccount, table)) : Promise.resolve(undefined),
    desired: {},
    apply: () => clients.storage.table.create(d.resourceGroup, d.storageAccount, table),
  });
}

/** The Application Insights component as the app needs it: its id (for the app's publisher role) and connection string. */
export interface Monitoring {
  /** Whether this run creates the component (then with local authentication off from the start). */
  readonly created: boolean;
  readonly workspaceId: string;
  readonly componentId: string;
  readonly connectionString: string | undefined;
}

/**
 * Log Analytics and the workspace-based Application Insights component, with local authentication
 * off: only an Entra identity holding Monitoring Metrics Publisher can send to it, so a leaked
 * connection string cannot forge the audit trail (Learn: Microsoft Entra authentication for
 * Application Insights, "Disable local authentication").
 */
export async function monitoring(ctx: Ctx): Promise<Monitoring> {
  const { clients, d } = ctx;
  const workspace = await trackedResource(
    ctx,
    `Log Analytics workspace ${d.logAnalyticsWorkspace}`,
    () => clients.workspaces.workspaces.get(d.resourceGroup, d.logAnalyticsWorkspace),
    { sku: { name: 'PerGB2018' }, retentionInDays: 30 },
    (body) => clients.workspaces.workspaces.createOrUpdate(d.resourceGroup, d.logAnalyticsWorkspace, body),
  );
  const workspaceId =
    workspace?.id ??
    `/subscriptions/${d.subscriptionId}/resourceGroups/${d.resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${d.logAnalyticsWorkspace}`;
  const name = `Application Insights ${d.applicationInsights}`;
  const component = await trackedResource(
    ctx,
    name,
    () => clients.insights.components.get(d.resourceGroup, d.applicationInsights),
    componentOf(workspaceId),
    (body) => clients.insights.components.createOrUpdate(d.resourceGroup, d.applicationInsights, body),
    // A new component takes Entra tokens only from the start; an existing one is switched by
    // localAuthOff, once the app can send with its identity.
    { disableLocalAuth: true },
  );
  return {
    created: ctx.run.changes.some((c) => c.resource === name && c.action === 'create'),
    workspaceId,
    componentId:
      component?.id ??
      `/subscriptions/${d.subscriptionId}/resourceGroups/${d.resourceGroup}/providers/Microsoft.Insights/components/${d.applicationInsights}`,
    connectionString: component?.connectionString,
  };
}

const componentOf = (workspaceId: string) => ({
  kind: 'web',
  applicationType: 'web',
  workspaceResourceId: workspaceId,
  ingestionMode: 'LogAnalytics',
});

/**
 * Local authentication off on an existing component, as the last change of a run: by then the app
 * has `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`, Monitoring Metrics Publisher and the code that
 * sends with its token. Turned off earlier, the running app's and the host's telemetry (the audit
 * records among it) would be refused until then. A new component was created with it off.
 */
export async function localAuthOff(ctx: Ctx, telemetry: Monitoring): Promise<void> {
  if (telemetry.created) return;
  const { clients, d } = ctx;
  await trackedResource(
    ctx,
    `Application Insights ${d.applicationInsights} (local authentication off)`,
    () => clients.insights.components.get(d.resourceGroup, d.applicationInsights),
    { ...componentOf(telemetry.workspaceId), disableLocalAuth: true },
    (body) => clients.insights.components.createOrUpdate(d.resourceGroup, d.applicationInsights, body),
  );
}

/** The app's user-assigned identity, as the deployment file names it: what roles and settings need of it. */
export interface AppIdentity {
  readonly id: string;
  /** Its name, for messages. */
  readonly name: string;
  readonly principalId: string;
  readonly clientId: string;
}

/** The api-version of Microsoft.ManagedIdentity read through the generic resources client (REST spec, stable 2023-01-31). */
const MANAGED_IDENTITY_API_VERSION = '2023-01-31';

/** Reads the user-assigned identity the deployment file names (it must exist: the deployment does not own it). */
export async function userAssignedIdentity(ctx: Ctx, id: string): Promise<AppIdentity> {
  const name = id.split('/').pop() ?? id;
  const found = await step(`user-assigned identity ${name}`, 'read', () =>
    ctx.clients.resources.resources.getById(id, MANAGED_IDENTITY_API_VERSION),
  );
  const props = (found.properties ?? {}) as { principalId?: unknown; clientId?: unknown };
  if (typeof props.principalId !== 'string' || typeof props.clientId !== 'string') {
    throw new DeployError(`user-assigned identity ${name}`, 'Azure answered no principalId or clientId for it');
  }
  return { id: found.id ?? id, name, principalId: props.principalId, clientId: props.clientId };
}

/**
 * The rotation identity (`rotation` in the file): a user-assigned identity in the deployment's
 * group, created when missing (REST spec: specification/msi, UserAssignedIdentities_CreateOrUpdate,
 * a tracked resource whose tenantId, principalId and clientId Azure assigns). Undefined under
 * `--what-if` while it does not exist.
 */
export async function rotationIdentity(ctx: Ctx): Promise<AppIdentity | undefined> {
  const { clients, d } = ctx;
  const rotation = d.rotation;
  if (!rotation) return undefined;
  type Found = { id?: string; location?: string; tags?: Record<string, string>; properties?: unknown };
  const found = await trackedResource<Found, object>(
    ctx,
    `user-assigned identity ${rotation.identityName} (rotation)`,
    () => clients.resources.resources.getById(rotation.identityId, MANAGED_IDENTITY_API_VERSION),
    {},
    (body) => clients.resources.resources.beginCreateOrUpdateByIdAndWait(rotation.identityId, MANAGED_IDENTITY_API_VERSION, body),
  );
  if (!found) return undefined;
  const props = (found.properties ?? {}) as { principalId?: unknown; clientId?: unknown };
  if (typeof props.principalId !== 'string' || typeof props.clientId !== 'string') {
    throw new DeployError(`user-assigned identity ${rotation.identityName}`, 'Azure answered no principalId or clientId for it');
  }
  return { id: found.id ?? rotation.identityId, name: rotation.identityName, principalId: props.principalId, clientId: props.clientId };
}

/**
 * The Flex Consumption plan and the Function App (Linux, Node.js 22), with its system-assigned
 * identity, or only the user-assigned one the deployment file names; plus the rotation identity
 * when `rotation` asks for it (`SystemAssigned, UserAssigned`, or `UserAssigned` with both).
 */
export async function functionApp(
  ctx: Ctx,
  account: StorageAccount | undefined,
  identity?: AppIdentity,
  rotation?: { readonly id: string },
): Promise<Site | undefined> {
  const { clients, d } = ctx;
  const plan = await trackedResource(
    ctx,
    `Flex Consumption plan ${d.plan}`,
    () => clients.web.appServicePlans.get(d.resourceGroup, d.plan),
    { sku: { name: 'FC1', tier: 'FlexConsumption' }, kind: 'functionapp', reserved: true },
    (body) => clients.web.appServicePlans.createOrUpdate(d.resourceGroup, d.plan, body),
  );
  const planId =
    plan?.id ?? `/subscriptions/${d.subscriptionId}/resourceGroups/${d.resourceGroup}/providers/Microsoft.Web/serverfarms/${d.plan}`;
  const blobEndpoint = account?.primaryEndpoints?.blob ?? `https://${d.storageAccount}.blob.core.windows.net/`;
  const desired = {
    kind: 'functionapp,linux',
    serverFarmId: planId,
    // Sent as Microsoft documents a Flex Consumption site (REST spec example
    // CreateOrUpdateFunctionAppFlexConsumption.json, Learn's "Flex Consumption plan deprecations"):
    // nothing of that table (no ftpsState: "FTPS not supported" on Flex), the runtime in functionAppConfig.
    // httpsOnly and minTlsVersion are in neither list; 1.2 is what Azure answers by default, kept
    // here so that a lowered value is put back.
    httpsOnly: true,
    siteConfig: { minTlsVersion: '1.2' },
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer',
          value: `${blobEndpoint.replace(/\/+$/, '')}/${packageContainer(d)}`,
          authentication: identity
            ? { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
            : { type: 'SystemAssignedIdentity' },
        },
      },
      runtime: { name: 'node', version: '22' },
      scaleAndConcurrency: { maximumInstanceCount: d.maximumInstanceCount, instanceMemoryMB: d.instanceMemoryMB },
    },
  };
  return reconcile<Site>(ctx.run, {
    resource: `Function App ${d.appName}`,
    // A GET of the site answers most of its configuration as null: the configuration is read apart.
    read: async () => {
      const site = await orAbsent(() => clients.web.webApps.get(d.resourceGroup, d.appName));
      if (!site) return undefined;
      const config = await clients.web.webApps.getConfiguration(d.resourceGroup, d.appName);
      return { ...site, siteConfig: config };
    },
    desired,
    compare: (s) => [
      ...locationDiff(d.location, s.location),
      ...differences(desired, s),
      ...identityDiff(s.identity, identity, rotation),
      ...differences(tagsOf(d), s.tags ?? {}, {}, 'tags'),
    ],
    // Tags already there stay (the code step's package tag, the portal's hidden-link tags).
    apply: (s) =>
      clients.web.webApps.createOrUpdate(d.resourceGroup, d.appName, {
        location: d.location,
        ...desired,
        identity: siteIdentity(identity, rotation),
        tags: mergedTags(s?.tags, tagsOf(d)),
      }),
  });
}

/**
 * The site's `identity`: the system-assigned one, or only the file's user-assigned one; the rotation
 * identity beside either (REST spec: ManagedServiceIdentity type `SystemAssigned, UserAssigned`).
 */
export function siteIdentity(
  identity: { readonly id: string } | undefined,
  rotation: { readonly id: string } | undefined,
): { type: 'SystemAssigned' | 'UserAssigned' | 'SystemAssigned, UserAssigned'; userAssignedIdentities?: Record<string, object> } {
  const userAssigned = [identity, rotation].filter((x): x is { readonly id: string } => x !== undefined).map((x) => x.id);
  if (userAssigned.length === 0) return { type: 'SystemAssigned' };
  return {
    type: identity ? 'UserAssigned' : 'SystemAssigned, UserAssigned',
    userAssignedIdentities: Object.fromEntries(userAssigned.map((id) => [id, {}])),
  };
}

/**
 * How the site's identity differs from the one wanted: the type (without regard to case and
 * spaces), and the user-assigned identities by id without regard to case (ARM answers ids in its
 * own casing).
 */
export function identityDiff(
  current: { type?: string; userAssignedIdentities?: Record<string, unknown> } | undefined,
  identity: AppIdentity | undefined,
  rotation?: { readonly id: string },
): Difference[] {
  const wanted = siteIdentity(identity, rotation);
  const type = wanted.type;
  const canon = (t: string): string => t.replace(/\s+/g, '').toLowerCase();
  const diffs: Difference[] = [];
  if (canon(current?.type ?? 'None') !== canon(type)) diffs.push({ path: 'identity.type', from: current?.type, to: type });
  // Exactly the named ones: another identity attached by hand would be another way into the vaults.
  const have = Object.keys(current?.userAssignedIdentities ?? {});
  const want = Object.keys(wanted.userAssignedIdentities ?? {});
  const same = have.length === want.length && want.every((id) => have.some((k) => k.toLowerCase() === id.toLowerCase()));
  if (!same) diffs.push({ path: 'identity.userAssignedIdentities', from: have, to: want });
  return diffs;
}

/** The app settings, replaced as a whole: a setting added by hand in the portal is removed (and shown). */
export async function appSettings(ctx: Ctx, settings: Record<string, string>, siteExists: boolean): Promise<void> {
  const { clients, d } = ctx;
  await reconcile(ctx.run, {
    resource: `app settings of ${d.appName}`,
    // A new app has none: that is a creation, not an update.
    read: async () => {
      if (!siteExists) return undefined;
      const current = (await clients.web.webApps.listApplicationSettings(d.resourceGroup, d.appName)).properties ?? {};
      return Object.keys(current).length > 0 ? current : undefined;
    },
    desired: settings,
    compare: (current) => settingDifferences(settings, current),
    secrets: Object.values(settings),
    apply: async () =>
      (await clients.web.webApps.updateApplicationSettings(d.resourceGroup, d.appName, { properties: settings })).properties ?? {},
    hideValues: true,
  });
}

/**
 * Basic (user name and password) publishing off for both the SCM and FTP endpoints: the code goes
 * through One Deploy with the deployer's Entra token, so the site's publishing profile must not
 * open another way in (Learn: "Disable basic authentication in App Service deployments").
 */
export async function basicPublishingOff(ctx: Ctx, siteExists: boolean): Promise<void> {
  const { clients, d } = ctx;
  const web = clients.web.webApps;
  const endpoints = [
    {
      name: 'scm',
      get: () => web.getScmAllowed(d.resourceGroup, d.appName),
      put: () => web.updateScmAllowed(d.resourceGroup, d.appName, { allow: false }),
    },
    {
      name: 'ftp',
      get: () => web.getFtpAllowed(d.resourceGroup, d.appName),
      put: () => web.updateFtpAllowed(d.resourceGroup, d.appName, { allow: false }),
    },
  ];
  for (const endpoint of endpoints) {
    await reconcile(ctx.run, {
      resource: `basic publishing credentials (${endpoint.name}) of ${d.appName}`,
      // ARM answers every site's policy; a site that does not exist yet has none to read.
      read: () => (siteExists ? orAbsent(endpoint.get) : Promise.resolve(undefined)),
      desired: { allow: false },
      apply: endpoint.put,
    });
  }
}
