import {
  ArmError,
  type ArmAnswer,
  type ArmRequest,
  type Json,
  cloneJson,
  isJson,
  methodNotAllowed,
  objectAt,
  regionDisplayName,
  regionName,
  resourceNotFound,
  stringAt,
  webRpError,
} from './armCore';
import {
  type ArmWorld,
  type BuildContext,
  type ResourceKind,
  identityOf,
  mergedProperties,
  requireGloballyUnique,
  tagsOf,
} from './armResources';
import { EMULATOR_SUBSCRIPTION_ID } from './keyVaultTypes';
import type { StoredResource } from './armStore';
import type { IndexedFunction, SiteState } from './siteState';

export const SERVER_FARM_TYPE = 'Microsoft.Web/serverfarms';
export const SITE_TYPE = 'Microsoft.Web/sites';

/** App Service plans (`appServicePlans.createOrUpdate` / `get`): a first create is a Location-mode operation. */
export const serverFarmKind: ResourceKind = {
  type: SERVER_FARM_TYPE,
  tracked: true,
  lro: 'location',
  provisioningState: true,
  build(ctx) {
    const sku = isJson(ctx.body['sku']) ? cloneJson(ctx.body['sku']) : objectAt(ctx.existing, 'sku');
    const skuName = stringAt(sku, 'name');
    if (!skuName) throw new ArmError(400, 'BadRequest', 'The parameter sku.name has an invalid value.');
    const previous = objectAt(ctx.existing, 'properties');
    const given = mergedProperties(ctx);
    const location = regionDisplayName(String(ctx.body['location']));
    return {
      id: ctx.id,
      name: ctx.name,
      type: SERVER_FARM_TYPE,
      kind: stringAt(ctx.body, 'kind') ?? stringAt(ctx.existing, 'kind') ?? 'app',
      // App Service answers the region's display name.
      location,
      tags: tagsOf(ctx),
      sku: {
        ...sku,
        name: skuName,
        tier: stringAt(sku, 'tier') ?? tierOf(skuName),
        size: stringAt(sku, 'size') ?? skuName,
        family: stringAt(sku, 'family') ?? skuName.replace(/\d+$/, ''),
        capacity: sku['capacity'] ?? 0,
      },
      properties: {
        serverFarmId: previous['serverFarmId'] ?? Math.floor(Math.random() * 90_000) + 10_000,
        name: ctx.name,
        workerSize: 'Default',
        workerSizeId: 0,
        currentWorkerSize: 'Default',
        currentWorkerSizeId: 0,
        currentNumberOfWorkers: 0,
        status: 'Ready',
        webSpace: `${ctx.resourceGroup}-${regionName(location)}webspace`,
        subscription: EMULATOR_SUBSCRIPTION_ID,
        maximumNumberOfWorkers: 0,
        geoRegion: location,
        numberOfSites: previous['numberOfSites'] ?? 0,
        perSiteScaling: false,
        elasticScaleEnabled: false,
        maximumElasticWorkerCount: 1,
        isSpot: false,
        isXenon: false,
        hyperV: false,
        reserved: false,
        targetWorkerCount: 0,
        targetWorkerSizeId: 0,
        zoneRedundant: false,
        ...given,
        resourceGroup: ctx.resourceGroup,
        provisioningState: stringAt(previous, 'provisioningState') ?? 'Succeeded',
      },
    };
  },
};

function tierOf(sku: string): string {
  if (/^FC\d/i.test(sku)) return 'FlexConsumption';
  if (/^Y\d/i.test(sku)) return 'Dynamic';
  if (/^EP\d/i.test(sku)) return 'ElasticPremium';
  if (/^P\d+v\d/i.test(sku)) return `PremiumV${sku.replace(/^P\d+v/i, '')}`;
  if (/^B\d/i.test(sku)) return 'Basic';
  if (/^S\d/i.test(sku)) return 'Standard';
  return 'Free';
}

/**
 * Site configuration properties a Flex Consumption site refuses, by their JSON name.
 * Learn: functions-app-settings, "Flex Consumption plan deprecations" (alwaysOn, ftpsState,
 * use32BitWorkerProcess, windowsFxVersion, linuxFxVersion, javaVersion, powerShellVersion,
 * netFrameworkVersion, functionAppScaleLimit, preWarmedInstanceCount, vnet*Enabled); public reports:
 * microsoft/azure-pipelines-tasks#21032 (FtpsState, Use32BitWorkerProcess, NetFrameworkVersion,
 * FunctionsRuntimeScaleMonitoringEnabled, even when null), Azure/azure-functions-host#10643
 * (FunctionAppScaleLimit), Azure/terraform-azurerm-avm-res-web-site#283 (LinuxFxVersion).
 */
const FLEX_INVALID_SITE_CONFIG = [
  'ftpsState',
  'use32BitWorkerProcess',
  'windowsFxVersion',
  'linuxFxVersion',
  'javaVersion',
  'powerShellVersion',
  'netFrameworkVersion',
  'functionAppScaleLimit',
  'preWarmedInstanceCount',
  'functionsRuntimeScaleMonitoringEnabled',
  'vnetRouteAllEnabled',
  'vnetImagePullEnabled',
  'vnetContentShareEnabled',
  'vnetBackupRestoreEnabled',
];

/**
 * App settings a Flex Consumption site refuses. Learn: "Flex Consumption plan deprecations" (the
 * settings rows); public report of the message: `Site.SiteConfig.AppSettings.FUNCTIONS_WORKER_RUNTIME`.
 */
const FLEX_INVALID_APP_SETTINGS = [
  'ENABLE_ORYX_BUILD',
  'FUNCTIONS_EXTENSION_VERSION',
  'FUNCTIONS_WORKER_RUNTIME',
  'FUNCTIONS_WORKER_RUNTIME_VERSION',
  'FUNCTIONS_MAX_HTTP_CONCURRENCY',
  'FUNCTIONS_WORKER_PROCESS_COUNT',
  'FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED',
  'SCM_DO_BUILD_DURING_DEPLOYMENT',
  'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING',
  'WEBSITE_CONTENTOVERVNET',
  'WEBSITE_CONTENTSHARE',
  'WEBSITE_DNS_SERVER',
  'WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT',
  'WEBSITE_NODE_DEFAULT_VERSION',
  'WEBSITE_RUN_FROM_PACKAGE',
  'WEBSITE_SKIP_CONTENTSHARE_VALIDATION',
  'WEBSITE_VNET_ROUTE_ALL',
];

/** Site properties (outside siteConfig) a Flex Consumption site refuses. Learn: "Flex Consumption plan deprecations". */
const FLEX_INVALID_SITE_PROPERTIES = ['containerSize', 'isXenon', 'isReserved'];

const pascal = (name: string): string => `${name.charAt(0).toUpperCase()}${name.slice(1)}`;

/** Whether a plan is Flex Consumption (sku FC1, tier FlexConsumption). */
function isFlexPlan(plan: StoredResource | undefined): boolean {
  const sku = objectAt(plan?.body, 'sku');
  return /^flexconsumption$/i.test(stringAt(sku, 'tier') ?? '') || /^FC\d/i.test(stringAt(sku, 'name') ?? '');
}

/**
 * The Web RP's 400 for a Flex Consumption site given what Flex does not take: ExtendedCode 51021,
 * template `{0} is invalid.  {1}` (two spaces, as quoted in Azure/terraform-azurerm-avm-res-web-site#283).
 * Present means sent: a property sent as null is refused too (microsoft/azure-pipelines-tasks#21032).
 */
export function flexRefusal(properties: Json, appSettingNames: readonly string[]): ArmError | undefined {
  const siteConfig = objectAt(properties, 'siteConfig');
  const paths = [
    ...FLEX_INVALID_SITE_PROPERTIES.filter((p) => p in properties).map((p) => `Site.${pascal(p)}`),
    ...FLEX_INVALID_SITE_CONFIG.filter((p) => p in siteConfig).map((p) => `Site.SiteConfig.${pascal(p)}`),
    // alwaysOn: Learn says "Not valid"; Microsoft's own Flex quickstart sends `alwaysOn: false` and is accepted.
    ...(siteConfig['alwaysOn'] === true ? ['Site.SiteConfig.AlwaysOn'] : []),
  ];
  const settings = appSettingNames.filter((n) => FLEX_INVALID_APP_SETTINGS.some((s) => s.toLowerCase() === n.toLowerCase()));
  if (paths.length > 0) return flexInvalid('site configuration property', 'site configuration properties', paths);
  if (settings.length > 0) {
    return flexInvalid(
      'app setting',
      'app settings',
      settings.map((n) => `Site.SiteConfig.AppSettings.${n}`),
    );
  }
  return undefined;
}

function flexInvalid(one: string, many: string, paths: string[]): ArmError {
  const subject =
    paths.length === 1
      ? `The following ${one} (${paths[0] ?? ''}) for Flex Consumption sites`
      : `The following list of ${paths.length} ${many} (${paths.join(', ')}) for Flex Consumption sites`;
  const remedy = `Please remove or rename ${paths.length === 1 ? 'it' : 'them'} before retrying.`;
  return webRpError(400, 'BadRequest', `${subject} is invalid.  ${remedy}`, '51021', '{0} is invalid.  {1}', [subject, remedy]);
}

/** The names in a site body's `siteConfig.appSettings` (`[{name, value}]`). */
function appSettingNamesOf(properties: Json): string[] {
  const list = objectAt(properties, 'siteConfig')['appSettings'];
  return Array.isArray(list) ? list.filter(isJson).map((s) => String(s['name'])) : [];
}

/** Function apps (`webApps.createOrUpdate` / `get` / `update`): a first create is a Location-mode operation. */
export const siteKind: ResourceKind = {
  type: SITE_TYPE,
  tracked: true,
  lro: 'location',
  provisioningState: false,
  build(ctx) {
    if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,58}[A-Za-z0-9])?$/.test(ctx.name)) {
      throw new ArmError(400, 'BadRequest', `The site name '${ctx.name}' is invalid: 2-60 letters, digits and hyphens.`);
    }
    requireGloballyUnique(ctx, SITE_TYPE, 'Conflict', `Website with given name ${ctx.name} already exists.`);
    const given = mergedProperties(ctx);
    const planId = stringAt(given, 'serverFarmId');
    const plan = planId ? ctx.world.store.get(planId) : undefined;
    if (!plan || plan.type !== SERVER_FARM_TYPE) {
      throw new ArmError(404, 'NotFound', `Cannot find ServerFarm with name ${planId?.split('/').pop() ?? '(none)'}.`);
    }
    const sent = objectAt(ctx.body, 'properties');
    if (isFlexPlan(plan)) {
      const refusal = flexRefusal(sent, appSettingNamesOf(sent));
      if (refusal) throw refusal;
    }
    return siteJson(ctx, given, plan);
  },
  patch(ctx) {
    const existing = ctx.existing ?? {};
    const given = mergedProperties(ctx);
    const siteConfig = {
      ...ctx.world.sites.ensure(ctx.name).siteConfig,
      ...objectAt(objectAt(ctx.body, 'properties'), 'siteConfig'),
    };
    const plan = ctx.world.store.get(stringAt(given, 'serverFarmId') ?? '');
    if (!plan) throw new ArmError(404, 'NotFound', 'Cannot find the ServerFarm of the site.');
    const sent = objectAt(ctx.body, 'properties');
    if (isFlexPlan(plan)) {
      const refusal = flexRefusal(sent, appSettingNamesOf(sent));
      if (refusal) throw refusal;
    }
    return siteJson(
      { ...ctx, body: { ...ctx.body, location: existing['location'], kind: ctx.body['kind'] ?? existing['kind'] } },
      { ...given, siteConfig },
      plan,
    );
  },
  stored(ctx, body) {
    const site = ctx.world.sites.ensure(String(body['name']));
    const configured = cloneJson(objectAt(objectAt(ctx.body, 'properties'), 'siteConfig'));
    delete configured['appSettings'];
    site.siteConfig = { ...site.siteConfig, ...configured };
    const plan = ctx.world.store.get(stringAt(objectAt(body, 'properties'), 'serverFarmId') ?? '');
    if (plan)
      objectAt(plan.body, 'properties')['numberOfSites'] = ctx.world.store
        .ofType(SITE_TYPE)
        .filter((s) => stringAt(objectAt(s.body, 'properties'), 'serverFarmId')?.toLowerCase() === plan.id.toLowerCase()).length;
    // Settings given in siteConfig.appSettings become the app settings, as App Service applies them.
    const requested = objectAt(objectAt(ctx.body, 'properties'), 'siteConfig')['appSettings'];
    if (Array.isArray(requested)) {
      site.appSettings = Object.fromEntries(
        requested
          .filter(isJson)
          .map((s) => [String(s['name']), typeof s['value'] === 'string' ? s['value'] : JSON.stringify(s['value'] ?? '')]),
      );
      ctx.world.appSettingsChanged(site.name);
    }
  },
};

/** The configuration values a GET of the site itself reports (App Service answers the rest as null). */
const SITE_GET_CONFIG = new Set([
  'numberOfWorkers',
  'linuxFxVersion',
  'windowsFxVersion',
  'acrUseManagedIdentityCreds',
  'alwaysOn',
  'http20Enabled',
  'functionAppScaleLimit',
  'minimumElasticInstanceCount',
]);

function siteJson(ctx: BuildContext, given: Json, plan: StoredResource): Json {
  const host = `${ctx.name.toLowerCase()}.azurewebsites.net`;
  const scm = `${ctx.name.toLowerCase()}.scm.azurewebsites.net`;
  const previous = objectAt(ctx.existing, 'properties');
  const planProps = objectAt(plan.body, 'properties');
  // A GET of a site reports few configuration values; the rest read as null (config/web has them).
  const siteConfig: Json = Object.fromEntries(
    Object.entries(objectAt(given, 'siteConfig')).map(([k, v]) => [k, SITE_GET_CONFIG.has(k) ? v : null]),
  );
  const out: Json = {
    id: ctx.id,
    name: ctx.name,
    type: SITE_TYPE,
    kind: stringAt(ctx.body, 'kind') ?? stringAt(ctx.existing, 'kind') ?? 'app',
    location: regionDisplayName(String(ctx.body['location'])),
    tags: tagsOf(ctx),
    properties: {
      httpsOnly: false,
      clientAffinityEnabled: false,
      clientCertEnabled: false,
      publicNetworkAccess: 'Enabled',
      ...given,
      name: ctx.name,
      state: 'Running',
      hostNames: [host],
      webSpace: planProps['webSpace'],
      repositorySiteName: ctx.name,
      usageState: 'Normal',
      enabled: true,
      enabledHostNames: [host, scm],
      availabilityState: 'Normal',
      hostNameSslStates: [
        { name: host, sslState: 'Disabled', hostType: 'Standard' },
        { name: scm, sslState: 'Disabled', hostType: 'Repository' },
      ],
      serverFarmId: plan.id,
      reserved: planProps['reserved'] ?? false,
      isXenon: false,
      hyperV: false,
      lastModifiedTimeUtc: ctx.now,
      siteConfig,
      scmSiteAlsoStopped: false,
      hostNamesDisabled: false,
      customDomainVerificationId:
        stringAt(previous, 'customDomainVerificationId') ?? Buffer.from(ctx.id.toLowerCase()).toString('hex').slice(-64).toUpperCase(),
      outboundIpAddresses: '20.105.224.5,20.105.224.6',
      possibleOutboundIpAddresses: '20.105.224.5,20.105.224.6,20.105.224.7,20.105.224.8',
      containerSize: 1536,
      dailyMemoryTimeQuota: 0,
      resourceGroup: ctx.resourceGroup,
      defaultHostName: host,
      redundancyMode: 'None',
      storageAccountRequired: false,
      keyVaultReferenceIdentity: 'SystemAssigned',
      sku: stringAt(objectAt(plan.body, 'sku'), 'tier'),
    },
  };
  const identity = identityOf(ctx, SITE_TYPE);
  if (identity) out['identity'] = identity;
  return out;
}

/** The site's sub-resources and actions (`rest` is what follows `sites/{name}`). */
export function siteActionRoute(world: ArmWorld, site: StoredResource, rest: string[], req: ArmRequest): ArmAnswer {
  const name = String(site.body['name']);
  const state = world.sites.ensure(name);
  const key = rest.map((s) => s.toLowerCase()).join('/');
  const location = site.body['location'];
  const settingsJson = (): Json => ({
    id: `${site.id}/config/appsettings`,
    name: 'appsettings',
    type: 'Microsoft.Web/sites/config',
    location,
    properties: { ...state.appSettings },
  });
  if (key === 'config/appsettings' && req.method === 'PUT') {
    const props = objectAt(req.body, 'properties');
    if (isFlexPlan(world.store.get(stringAt(objectAt(site.body, 'properties'), 'serverFarmId') ?? ''))) {
      const refusal = flexRefusal({}, Object.keys(props));
      if (refusal) throw refusal;
    }
    state.appSettings = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    world.appSettingsChanged(name);
    return { status: 200, body: settingsJson() };
  }
  if (key === 'config/appsettings/list' && req.method === 'POST') return { status: 200, body: settingsJson() };
  if (key === 'config/web' && req.method === 'GET') {
    return {
      status: 200,
      body: {
        id: `${site.id}/config/web`,
        name: 'web',
        type: 'Microsoft.Web/sites/config',
        location,
        properties: cloneJson(state.siteConfig),
      },
    };
  }
  // REST: WebApps_GetScmAllowed / WebApps_UpdateScmAllowed (and Ftp): `{properties: {allow}}`.
  const policy = /^basicpublishingcredentialspolicies\/(scm|ftp)$/.exec(key)?.[1] as 'scm' | 'ftp' | undefined;
  if (policy && (req.method === 'GET' || req.method === 'PUT')) {
    if (req.method === 'PUT') {
      const allow = objectAt(req.body, 'properties')['allow'];
      if (typeof allow !== 'boolean') throw new ArmError(400, 'BadRequest', 'The parameter properties.allow has an invalid value.');
      state.basicPublishing[policy] = allow;
    }
    return {
      status: 200,
      body: {
        id: `${site.id}/basicPublishingCredentialsPolicies/${policy}`,
        name: policy,
        type: 'Microsoft.Web/sites/basicPublishingCredentialsPolicies',
        location,
        properties: { allow: state.basicPublishing[policy] },
      },
    };
  }
  if (key === 'host/default/listkeys' && req.method === 'POST') {
    const systemKeys: Json = {};
    if (state.deployed?.functions.some((f) => f.trigger === 'eventGrid')) systemKeys['eventgrid_extension'] = state.eventGridKey;
    return { status: 200, body: { masterKey: state.masterKey, functionKeys: { default: state.functionKey }, systemKeys } };
  }
  if (key === 'syncfunctiontriggers' && req.method === 'POST') return { status: 204 };
  if (key === 'functions' && req.method === 'GET') {
    return { status: 200, body: { value: (state.deployed?.functions ?? []).map((f) => functionEnvelope(site, state, f)), nextLink: null } };
  }
  if (rest.length === 2 && key.startsWith('functions/') && req.method === 'GET') {
    const fn = state.deployed?.functions.find((f) => f.name.toLowerCase() === (rest[1] ?? '').toLowerCase());
    if (!fn)
      throw resourceNotFound(
        `${SITE_TYPE}/functions`,
        `${name}/${rest[1] ?? ''}`,
        String(objectAt(site.body, 'properties')['resourceGroup']),
      );
    return { status: 200, body: functionEnvelope(site, state, fn) };
  }
  if (
    [
      'config/appsettings',
      'config/appsettings/list',
      'config/web',
      'host/default/listkeys',
      'syncfunctiontriggers',
      'functions',
      'basicpublishingcredentialspolicies/scm',
      'basicpublishingcredentialspolicies/ftp',
    ].includes(key) ||
    key.startsWith('functions/')
  ) {
    throw methodNotAllowed(req);
  }
  throw new ArmError(404, 'NotFound', `The path '${req.path}' is not served by the ARM emulator.`);
}

function functionEnvelope(site: StoredResource, state: SiteState, fn: IndexedFunction): Json {
  const host = `https://${state.name.toLowerCase()}.azurewebsites.net`;
  const prefix = state.deployed?.routePrefix ?? 'api';
  const bindings: Json[] =
    fn.trigger === 'http'
      ? [
          {
            type: 'httpTrigger',
            direction: 'in',
            name: 'request',
            authLevel: fn.authLevel ?? 'function',
            methods: fn.methods ?? ['get', 'post'],
            route: fn.route ?? fn.name,
          },
          { type: 'http', direction: 'out', name: '$return' },
        ]
      : fn.trigger === 'timer'
        ? [{ type: 'timerTrigger', direction: 'in', name: 'timer', schedule: fn.schedule }]
        : [{ type: `${fn.trigger}Trigger`, direction: 'in', name: fn.trigger === 'eventGrid' ? 'event' : 'trigger' }];
  const properties: Json = {
    name: fn.name,
    function_app_id: site.id,
    script_root_path_href: `${host}/admin/vfs/home/site/wwwroot/`,
    script_href: `${host}/admin/vfs/home/site/wwwroot/${state.deployed?.main ?? ''}`,
    config_href: null,
    test_data_href: null,
    secrets_file_href: null,
    href: `${host}/admin/functions/${fn.name}`,
    config: { name: fn.name, entryPoint: '', scriptFile: state.deployed?.main ?? '', language: 'node', functionDirectory: '', bindings },
    invoke_url_template: fn.trigger === 'http' ? `${host}/${prefix ? `${prefix}/` : ''}${fn.route ?? fn.name}` : null,
    language: 'node',
    isDisabled: false,
  };
  return {
    id: `${site.id}/functions/${fn.name}`,
    name: `${state.name}/${fn.name}`,
    type: 'Microsoft.Web/sites/functions',
    location: site.body['location'],
    properties,
  };
}
