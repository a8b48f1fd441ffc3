import { ArmError, type Json, cloneJson, guidFrom, isJson, objectAt, regionName, stringAt } from './armCore';
import { type BuildContext, type ResourceKind, identityOf, mergedProperties, systemData, tagsOf } from './armResources';
import { SITE_TYPE } from './armWeb';

export const SYSTEM_TOPIC_TYPE = 'Microsoft.EventGrid/systemTopics';
const EVENT_SUBSCRIPTION_TYPE = 'Microsoft.EventGrid/systemTopics/eventSubscriptions';

/** The topic type each kind of source has (`Microsoft.KeyVault.vaults` for a vault). */
const TOPIC_TYPES: Record<string, string> = {
  'microsoft.keyvault/vaults': 'Microsoft.KeyVault.vaults',
  'microsoft.storage/storageaccounts': 'Microsoft.Storage.StorageAccounts',
  'microsoft.resources/resourcegroups': 'Microsoft.Resources.ResourceGroups',
  'microsoft.resources/subscriptions': 'Microsoft.Resources.Subscriptions',
};

/** How Event Grid answers a PUT: 201 (200 on update) with `Azure-AsyncOperation`, creates and updates alike. */
const EVENT_GRID_PUTS = { lro: 'async', asyncUpdates: true, createStatus: 201, provisioningState: true } as const;

/** What Event Grid assigns a topic and keeps across updates. */
function topicServerProperties(ctx: BuildContext): Json {
  const previous = objectAt(ctx.existing, 'properties');
  return {
    metricResourceId: stringAt(previous, 'metricResourceId') ?? guidFrom(`metric:${ctx.id.toLowerCase()}:${ctx.now}`),
    provisioningState: stringAt(previous, 'provisioningState') ?? 'Succeeded',
  };
}

/** System topics (`systemTopics.beginCreateOrUpdate` / `get`): asynchronous, one per source. */
export const systemTopicKind: ResourceKind = {
  type: SYSTEM_TOPIC_TYPE,
  tracked: true,
  ...EVENT_GRID_PUTS,
  build(ctx) {
    const given = mergedProperties(ctx);
    const requestedSource = stringAt(given, 'source');
    if (!requestedSource) throw new ArmError(400, 'InvalidRequest', 'The source of a system topic is required.');
    const previousSource = stringAt(objectAt(ctx.existing, 'properties'), 'source');
    if (previousSource !== undefined && previousSource.toLowerCase() !== requestedSource.toLowerCase()) {
      throw new ArmError(400, 'InvalidRequest', 'System topic source cannot be modified.');
    }
    const segments = requestedSource.split('/').filter((s) => s !== '');
    let source: string;
    try {
      source = ctx.world.store.resolveScope(segments).id;
    } catch {
      throw new ArmError(400, 'InvalidRequest', `The source resource '${requestedSource}' of the system topic was not found.`);
    }
    const sourceType = sourceTypeOf(segments);
    const expected = TOPIC_TYPES[sourceType];
    const topicType = stringAt(given, 'topicType');
    if (!topicType || (expected !== undefined && expected.toLowerCase() !== topicType.toLowerCase())) {
      throw new ArmError(
        400,
        'InvalidRequest',
        `Topic type '${topicType ?? ''}' is not valid for the source '${requestedSource}'${expected ? `; expected '${expected}'` : ''}.`,
      );
    }
    const other = ctx.world.store
      .ofType(SYSTEM_TOPIC_TYPE)
      .find(
        (t) =>
          t.id.toLowerCase() !== ctx.id.toLowerCase() &&
          stringAt(objectAt(t.body, 'properties'), 'source')?.toLowerCase() === source.toLowerCase(),
      );
    if (other) {
      throw new ArmError(
        400,
        'InvalidRequest',
        `There is an existing tracked system topic for the given source ${requestedSource}. Only one system topic is allowed per source.`,
      );
    }
    const out: Json = {
      id: ctx.id,
      name: ctx.name,
      type: SYSTEM_TOPIC_TYPE,
      location: regionName(String(ctx.body['location'])),
      tags: tagsOf(ctx),
      systemData: systemData(ctx),
      properties: {
        ...given,
        source: requestedSource,
        topicType: expected ?? topicType,
        ...topicServerProperties(ctx),
      },
    };
    const identity = identityOf(ctx, SYSTEM_TOPIC_TYPE);
    if (identity) out['identity'] = identity;
    return out;
  },
};

export const TOPIC_TYPE = 'Microsoft.EventGrid/topics';

/** Custom topics (`topics.beginCreateOrUpdate` / `get`): where an app publishes its own events. */
export const customTopicKind: ResourceKind = {
  type: TOPIC_TYPE,
  tracked: true,
  ...EVENT_GRID_PUTS,
  build(ctx) {
    const given = mergedProperties(ctx);
    const location = String(ctx.body['location']);
    return {
      id: ctx.id,
      name: ctx.name,
      type: TOPIC_TYPE,
      location: regionName(location),
      tags: tagsOf(ctx),
      systemData: systemData(ctx),
      properties: {
        inputSchema: 'EventGridSchema',
        publicNetworkAccess: 'Enabled',
        ...given,
        // As Event Grid names it: the topic, then the region's short name and a cluster number.
        endpoint: `https://${ctx.name.toLowerCase()}.${location.replace(/\s+/g, '').toLowerCase()}-1.eventgrid.azure.net/api/events`,
        ...topicServerProperties(ctx),
      },
    };
  },
};

function sourceTypeOf(segments: string[]): string {
  const lower = segments.map((s) => s.toLowerCase());
  if (lower.length === 2) return 'microsoft.resources/subscriptions';
  if (lower.length === 4) return 'microsoft.resources/resourcegroups';
  const providers = lower.indexOf('providers');
  return providers === -1 ? '' : [lower[providers + 1], ...lower.slice(providers + 2).filter((_, i) => i % 2 === 0)].join('/');
}

/** Event subscriptions of a system topic (`systemTopicEventSubscriptions.beginCreateOrUpdate` / `get`). */
export const eventSubscriptionKind: ResourceKind = {
  type: EVENT_SUBSCRIPTION_TYPE,
  tracked: false,
  ...EVENT_GRID_PUTS,
  build(ctx) {
    const given = mergedProperties(ctx);
    const destination = objectAt(given, 'destination');
    checkDestination(ctx, destination);
    const topic = ctx.world.store.get(ctx.parentId);
    const filter = objectAt(given, 'filter');
    return {
      id: ctx.id,
      name: ctx.name,
      type: EVENT_SUBSCRIPTION_TYPE,
      systemData: systemData(ctx),
      properties: {
        labels: [],
        eventDeliverySchema: 'EventGridSchema',
        retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 },
        ...given,
        topic: stringAt(objectAt(topic?.body, 'properties'), 'source') ?? ctx.parentId,
        destination: destinationJson(destination),
        filter: {
          subjectBeginsWith: '',
          subjectEndsWith: '',
          isSubjectCaseSensitive: false,
          enableAdvancedFilteringOnArrays: true,
          advancedFilters: [],
          ...cloneJson(filter),
        },
        provisioningState: stringAt(objectAt(ctx.existing, 'properties'), 'provisioningState') ?? 'Succeeded',
      },
    };
  },
};

/** Event Grid checks the destination exists: for an Azure Function, the function in the site's deployed package. */
function checkDestination(ctx: BuildContext, destination: Json): void {
  const endpointType = stringAt(destination, 'endpointType');
  if (!endpointType) throw new ArmError(400, 'InvalidRequest', 'The destination of the event subscription is required.');
  if (endpointType === 'WebHook') {
    const url = stringAt(objectAt(destination, 'properties'), 'endpointUrl') ?? '';
    if (!url.startsWith('https://'))
      throw new ArmError(400, 'InvalidRequest', `The attribute 'endpointUrl' is not a valid https URL: '${url}'.`);
    return;
  }
  if (endpointType !== 'AzureFunction') return;
  const resourceId = stringAt(objectAt(destination, 'properties'), 'resourceId') ?? '';
  const notFound = new ArmError(
    400,
    'InvalidRequest',
    `Destination endpoint not found. Resource details: resourceId: ${resourceId}. Resource should pre-exist before attempting this operation.`,
  );
  const match = /^(.*\/providers\/Microsoft\.Web\/sites\/[^/]+)\/functions\/([^/]+)$/i.exec(resourceId);
  if (!match?.[1] || !match[2]) throw notFound;
  const site = ctx.world.store.get(match[1]);
  if (!site || site.type !== SITE_TYPE) throw notFound;
  const functionName = match[2].toLowerCase();
  const deployed = ctx.world.sites.get(String(site.body['name']))?.deployed;
  if (!deployed?.functions.some((f) => f.name.toLowerCase() === functionName)) throw notFound;
}

function destinationJson(destination: Json): Json {
  const out = cloneJson(destination);
  const props = objectAt(out, 'properties');
  if (stringAt(out, 'endpointType') === 'AzureFunction') {
    out['properties'] = { maxEventsPerBatch: 1, preferredBatchSizeInKilobytes: 64, ...props };
  } else if (stringAt(out, 'endpointType') === 'WebHook') {
    // Event Grid never answers the full webhook URL (it may carry a key), only its base.
    const url = stringAt(props, 'endpointUrl') ?? '';
    const rest = Object.fromEntries(Object.entries(props).filter(([k]) => k !== 'endpointUrl'));
    out['properties'] = { maxEventsPerBatch: 1, preferredBatchSizeInKilobytes: 64, ...rest, endpointBaseUrl: url.split('?')[0] };
  } else if (!isJson(out['properties'])) {
    out['properties'] = {};
  }
  return out;
}
