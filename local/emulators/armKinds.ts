import { ArmError, type Json, cloneJson, guidFrom, isJson, objectAt, regionName, stringAt } from './armCore';
import { type BuildContext, type ResourceKind, identityOf, mergedProperties, requireGloballyUnique, tagsOf } from './armResources';
import { EMULATOR_SUBSCRIPTION_ID } from './keyVaultTypes';

export const STORAGE_ACCOUNT_TYPE = 'Microsoft.Storage/storageAccounts';
export const BLOB_CONTAINER_TYPE = 'Microsoft.Storage/storageAccounts/blobServices/containers';
const TABLE_TYPE = 'Microsoft.Storage/storageAccounts/tableServices/tables';

/** Storage accounts (`storageAccounts.create` / `getProperties` / `update` of `@azure/arm-storage`). */
export const storageAccountKind: ResourceKind = {
  type: STORAGE_ACCOUNT_TYPE,
  tracked: true,
  // Learn: "Track asynchronous Azure operations", "Create storage account (202 with Location and Retry-After)"
  lro: 'location',
  provisioningState: true,
  build(ctx) {
    // Learn: "Resolve errors for storage account names" (AccountNameInvalid, this message)
    if (!/^[a-z0-9]{3,24}$/.test(ctx.name)) {
      throw new ArmError(
        400,
        'AccountNameInvalid',
        `${ctx.name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.`,
      );
    }
    // Learn: "Resolve errors for storage account names" (StorageAccountAlreadyTaken, this message; the 409 is unverified)
    requireGloballyUnique(
      ctx,
      STORAGE_ACCOUNT_TYPE,
      'StorageAccountAlreadyTaken',
      `The storage account named ${ctx.name} is already taken.`,
    );
    const sku = isJson(ctx.body['sku']) ? cloneJson(ctx.body['sku']) : objectAt(ctx.existing, 'sku');
    const skuName = stringAt(sku, 'name');
    // Unsourced: modelled from ARM's required-property refusal (sku is required); code and message not verified.
    if (!skuName) throw new ArmError(400, 'MissingRequiredProperty', "The required property 'sku' is missing from the request.");
    return storageAccountJson(ctx, { name: skuName, tier: skuName.startsWith('Premium') ? 'Premium' : 'Standard' }, mergedProperties(ctx));
  },
  patch(ctx) {
    const existing = ctx.existing ?? {};
    const sku = isJson(ctx.body['sku']) ? cloneJson(ctx.body['sku']) : objectAt(existing, 'sku');
    return storageAccountJson(
      { ...ctx, body: { ...ctx.body, location: existing['location'], kind: ctx.body['kind'] ?? existing['kind'] } },
      sku,
      mergedProperties(ctx),
    );
  },
};

// REST spec: azure-rest-api-specs .../Microsoft.Storage/stable/2023-05-01/.../examples/2023-05-01/StorageAccountCreate.json (server-assigned properties)
function storageAccountJson(ctx: BuildContext, sku: Json, given: Json): Json {
  const location = regionName(stringAt(ctx.body, 'location') ?? stringAt(ctx.existing, 'location') ?? 'westeurope');
  const previous = objectAt(ctx.existing, 'properties');
  const created = stringAt(previous, 'creationTime') ?? ctx.now;
  const kind = stringAt(ctx.body, 'kind') ?? stringAt(ctx.existing, 'kind') ?? 'StorageV2';
  const endpoint = (service: string): string => `https://${ctx.name}.${service}.core.windows.net/`;
  const properties: Json = {
    keyCreationTime: { key1: created, key2: created },
    privateEndpointConnections: [],
    minimumTlsVersion: 'TLS1_2',
    allowBlobPublicAccess: false,
    supportsHttpsTrafficOnly: true,
    networkAcls: { bypass: 'AzureServices', virtualNetworkRules: [], ipRules: [], defaultAction: 'Allow' },
    encryption: {
      services: {
        file: { keyType: 'Account', enabled: true, lastEnabledTime: created },
        blob: { keyType: 'Account', enabled: true, lastEnabledTime: created },
      },
      keySource: 'Microsoft.Storage',
    },
    accessTier: kind === 'StorageV2' || kind === 'BlobStorage' ? 'Hot' : undefined,
    ...given,
    provisioningState: stringAt(previous, 'provisioningState') ?? 'Succeeded',
    creationTime: created,
    primaryEndpoints: {
      dfs: endpoint('dfs'),
      // Unsourced: the static-website zone (z6) is arbitrary, modelled from real accounts' web endpoints.
      web: `https://${ctx.name}.z6.web.core.windows.net/`,
      blob: endpoint('blob'),
      queue: endpoint('queue'),
      table: endpoint('table'),
      file: endpoint('file'),
    },
    primaryLocation: location,
    statusOfPrimary: 'available',
  };
  const out: Json = { sku, kind, id: ctx.id, name: ctx.name, type: STORAGE_ACCOUNT_TYPE, location, tags: tagsOf(ctx), properties };
  const identity = identityOf(ctx, STORAGE_ACCOUNT_TYPE);
  if (identity) out['identity'] = identity;
  return out;
}

/** Blob containers (`blobContainers.create` / `get`): 201 on create, 200 on update. */
// REST spec: azure-rest-api-specs .../Microsoft.Storage/stable/2023-05-01/.../examples/2023-05-01/BlobContainersPut.json (200 and 201)
export const blobContainerKind: ResourceKind = {
  type: BLOB_CONTAINER_TYPE,
  tracked: false,
  lro: 'none',
  createStatus: 201,
  provisioningState: false,
  build(ctx) {
    // Learn: "Naming rules and restrictions for Azure resources" (containers); code ContainerOperationFailure unsourced
    if (!/^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/.test(ctx.name)) {
      throw new ArmError(
        400,
        'ContainerOperationFailure',
        `The specifed resource name contains invalid characters or does not meet the naming requirements: '${ctx.name}'.`,
      );
    }
    const previous = objectAt(ctx.existing, 'properties');
    // Unsourced: the container's default properties and etag form are modelled from BlobContainers_Get answers, not verified.
    return {
      id: ctx.id,
      name: ctx.name,
      type: BLOB_CONTAINER_TYPE,
      etag: `"0x8D${Buffer.from(ctx.now).toString('hex').slice(0, 13).toUpperCase()}"`,
      properties: {
        deleted: false,
        remainingRetentionDays: 0,
        defaultEncryptionScope: '$account-encryption-key',
        denyEncryptionScopeOverride: false,
        publicAccess: 'None',
        leaseStatus: 'Unlocked',
        leaseState: 'Available',
        hasImmutabilityPolicy: false,
        hasLegalHold: false,
        ...mergedProperties(ctx),
        lastModifiedTime: stringAt(previous, 'lastModifiedTime') ?? ctx.now,
      },
    };
  },
};

/** Tables (`table.create` / `get`): 200 whether created or not, as the Storage RP answers. */
// REST spec: azure-rest-api-specs .../Microsoft.Storage/stable/2023-01-01/examples/TableOperationPut.json (200, properties.tableName)
export const tableKind: ResourceKind = {
  type: TABLE_TYPE,
  tracked: false,
  lro: 'none',
  createStatus: 200,
  provisioningState: false,
  build(ctx) {
    // Learn: "Naming rules and restrictions for Azure resources" (table: 3-63 alphanumerics, starts with a letter); code OutOfRangeInput unsourced
    if (!/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(ctx.name)) {
      throw new ArmError(
        400,
        'OutOfRangeInput',
        `The table name '${ctx.name}' is not valid: 3-63 letters and digits, starting with a letter.`,
      );
    }
    return { id: ctx.id, name: ctx.name, type: TABLE_TYPE, properties: { ...mergedProperties(ctx), tableName: ctx.name } };
  },
};

/** Log Analytics workspaces (`workspaces.createOrUpdate` / `get`): created asynchronously. */
// REST spec: azure-rest-api-specs .../Microsoft.OperationalInsights/stable/2022-10-01/Workspaces.json (long-running createOrUpdate)
export const workspaceKind: ResourceKind = {
  type: 'Microsoft.OperationalInsights/workspaces',
  tracked: true,
  lro: 'async',
  createStatus: 201,
  provisioningState: true,
  build(ctx) {
    const previous = objectAt(ctx.existing, 'properties');
    const given = mergedProperties(ctx);
    const sku = objectAt(given, 'sku');
    // REST spec: .../OperationalInsights/stable/2022-10-01/examples/WorkspacesSubscriptionList.json (customerId, retentionInDays 30, publicNetworkAccess*)
    const out: Json = {
      id: ctx.id,
      name: ctx.name,
      type: 'Microsoft.OperationalInsights/workspaces',
      location: regionName(String(ctx.body['location'])),
      tags: tagsOf(ctx),
      etag: `"${guidFrom(`${ctx.id}:${ctx.now}`).slice(0, 8)}-0000-0d00-0000-000000000000"`,
      properties: {
        publicNetworkAccessForIngestion: 'Enabled',
        publicNetworkAccessForQuery: 'Enabled',
        retentionInDays: 30,
        features: { legacy: 0, searchVersion: 1, enableLogAccessUsingOnlyResourcePermissions: true },
        workspaceCapping: { dailyQuotaGb: -1, quotaNextResetTime: ctx.now, dataIngestionStatus: 'RespectQuota' },
        ...given,
        sku: {
          ...sku,
          // Public report: https://github.com/Azure/ALZ-Bicep/pull/239 (what-if sees the workspace SKU as pergb2018)
          // Log Analytics answers the SKU name in lower case, whatever the PUT said.
          name: (stringAt(sku, 'name') ?? 'PerGB2018').toLowerCase(),
          lastSkuUpdate: stringAt(objectAt(previous, 'sku'), 'lastSkuUpdate') ?? ctx.now,
        },
        customerId: stringAt(previous, 'customerId') ?? guidFrom(`workspace:${ctx.id.toLowerCase()}:${ctx.now}`),
        provisioningState: stringAt(previous, 'provisioningState') ?? 'Succeeded',
        createdDate: stringAt(previous, 'createdDate') ?? ctx.now,
        modifiedDate: ctx.now,
      },
    };
    const identity = identityOf(ctx, 'Microsoft.OperationalInsights/workspaces');
    if (identity) out['identity'] = identity;
    return out;
  },
};

/** Application Insights components (`components.createOrUpdate` / `get` of arm-appinsights): synchronous. */
// REST spec: azure-rest-api-specs .../applicationinsights/.../stable/2020-02-02/examples/ComponentsCreate.json (200, AppId, InstrumentationKey, IngestionMode)
export const componentKind: ResourceKind = {
  type: 'microsoft.insights/components',
  tracked: true,
  lro: 'none',
  createStatus: 200,
  provisioningState: true,
  build(ctx) {
    const location = regionName(String(ctx.body['location']));
    const previous = objectAt(ctx.existing, 'properties');
    const given = mergedProperties(ctx);
    const instrumentationKey = stringAt(previous, 'InstrumentationKey') ?? guidFrom(`ikey:${ctx.id.toLowerCase()}:${ctx.now}`);
    const appId = stringAt(previous, 'AppId') ?? guidFrom(`appid:${ctx.id.toLowerCase()}:${ctx.now}`);
    return {
      id: ctx.id,
      name: ctx.name,
      // Unsourced: lower case as portal-exported templates spell it; the REST spec example says Microsoft.Insights/components.
      // Application Insights answers its type in lower case.
      type: 'microsoft.insights/components',
      location,
      tags: tagsOf(ctx),
      kind: stringAt(ctx.body, 'kind') ?? stringAt(ctx.existing, 'kind') ?? 'web',
      etag: `"${guidFrom(`${ctx.id}:${ctx.now}`).slice(0, 8)}-0000-0e00-0000-000000000000"`,
      properties: {
        Ver: 'v2',
        Flow_Type: 'Bluefield',
        Request_Source: 'rest',
        RetentionInDays: 90,
        publicNetworkAccessForIngestion: 'Enabled',
        publicNetworkAccessForQuery: 'Enabled',
        ...given,
        Application_Type: stringAt(given, 'Application_Type') ?? 'web',
        ApplicationId: ctx.name,
        AppId: appId,
        Name: ctx.name,
        InstrumentationKey: instrumentationKey,
        // Learn: "Connection strings in Application Insights" (InstrumentationKey;IngestionEndpoint;LiveEndpoint;ApplicationId)
        ConnectionString:
          `InstrumentationKey=${instrumentationKey};IngestionEndpoint=https://${location}-0.in.applicationinsights.azure.com/;` +
          `LiveEndpoint=https://${location}.livediagnostics.monitor.azure.com/;ApplicationId=${appId}`,
        CreationDate: stringAt(previous, 'CreationDate') ?? ctx.now,
        TenantId: EMULATOR_SUBSCRIPTION_ID,
        IngestionMode: stringAt(given, 'WorkspaceResourceId')
          ? 'LogAnalytics'
          : (stringAt(given, 'IngestionMode') ?? 'ApplicationInsights'),
        provisioningState: 'Succeeded',
      },
    };
  },
};
