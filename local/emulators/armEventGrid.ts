import { ArmError, type Json, cloneJson, guidFrom, isJson, objectAt, regionName, stringAt } from './armCore';
import { type BuildContext, type ResourceKind, identityOf, mergedProperties, systemData, tagsOf } from './armResources';
import { SITE_TYPE } from './armWeb';

export const SYSTEM_TOPIC_TYPE = 'Microsoft.EventGrid/systemTopics';
const EVENT_SUBSCRIPTION_TYPE = 'Microsoft.EventGrid/systemTopics/eventSubscriptions';

/** The topic type each kind of source has (`Microsoft.KeyVault.vaults` for a vault). */
// Unsourced: topic-type names modelled from `az eventgrid system-topic` output, not verified against a document.
const TOPIC_TYPES: Record<string, string> = {
  'microsoft.keyvault/vaults': 'Microsoft.KeyVault.vaults',
  'microsoft.storage/storageaccounts': 'Microsoft.Storage.StorageAccounts',
  'microsoft.resources/resourcegroups': 'Microsoft.Resources.ResourceGroups',
  'microsoft.resources/subscriptions': 'Microsoft.Resources.Subscriptions',
};

/** How Event Grid answers a PUT: 201 (200 on update) with `Azure-AsyncOperation`, creates and updates alike. */
// Learn: "Track asynchronous Azure operations" (201 + Azure-AsyncOperation); that Event Grid updates are asynchronous too is unverified
const EVENT_GRID_PUTS = { lro: 'async', asyncUpdates: true, createStatus: 201, provisioningState: true } as const;

/** What Event Grid assigns a topic and keeps across updates. */
function topicServerProperties(ctx: BuildContext): Json {
  // Unsourced: metricResourceId modelled from the read-only property of topic responses; its value form is arbitrary.
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
    // Unsourced: modelled from Event Grid's InvalidRequest refusals; message not verified.
    if (!requestedSource) throw new ArmError(400, 'InvalidRequest', 'The source of a system topic is required.');
    const previousSource = stringAt(objectAt(ctx.existing, 'properties'), 'source');
    // Public report: https://github.com/Azure/azure-quickstart-templates/issues/13688 ("System topic source cannot be modified.")
    if (previousSource !== undefined && previousSource.toLowerCase() !== requestedSource.toLowerCase()) {
      throw new ArmError(400, 'InvalidRequest', 'System topic source cannot be modified.');
    }
    const segments = requestedSource.split('/').filter((s) => s !== '');
    let source: string;
    try {
      source = ctx.world.store.resolveScope(segments).id;
    } catch {
      // Unsourced: modelled from Event Grid's InvalidRequest refusals; message not verified.
      throw new ArmError(400, 'InvalidRequest', `The source resource '${requestedSource}' of the system topic was not found.`);
    }
    const sourceType = sourceTypeOf(segments);
    const expected = TOPIC_TYPES[sourceType];
    const topicType = stringAt(given, 'topicType');
    // Unsourced: modelled from Event Grid's InvalidRequest refusals; message not verified.
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
    // Public report: https://github.com/MicrosoftDocs/azure-docs/pull/97986 (InvalidRequest, this message)
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
        // Learn: "Post to custom topic for Azure Event Grid" (https://<topic>.<region>-1.eventgrid.azure.net/api/events)
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
        // Learn: "Event Grid message delivery and retry" (maxDeliveryAttempts 30, eventTimeToLiveInMinutes 1440 by default)
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
  // Unsourced: modelled from Event Grid's InvalidRequest refusals; message not verified.
  if (!endpointType) throw new ArmError(400, 'InvalidRequest', 'The destination of the event subscription is required.');
  if (endpointType === 'WebHook') {
    const url = stringAt(objectAt(destination, 'properties'), 'endpointUrl') ?? '';
    // Public report: https://github.com/MicrosoftDocs/azure-docs/issues/45625 (this message; the code InvalidRequest is unverified)
    if (!url.startsWith('https://'))
      throw new ArmError(
        400,
        'InvalidRequest',
        'Invalid event subscription request: Supplied URL is invalid. It cannot be null or empty and should be a proper HTTPS URL like https://www.example.com.',
      );
    return;
  }
  if (endpointType !== 'AzureFunction') return;
  const resourceId = stringAt(objectAt(destination, 'properties'), 'resourceId') ?? '';
  // Public report: https://github.com/pulumi/examples/issues/1672 (code "Endpoint validation", this message); the 400 is unverified
  const notFound = new ArmError(
    400,
    'Endpoint validation',
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
  // Learn: "Event Grid message delivery and retry" (one event per delivery by default); the 64 KB preferred batch size is unsourced
  if (stringAt(out, 'endpointType') === 'AzureFunction') {
    out['properties'] = { maxEventsPerBatch: 1, preferredBatchSizeInKilobytes: 64, ...props };
  } else if (stringAt(out, 'endpointType') === 'WebHook') {
    // Unsourced: modelled from the read-only endpointBaseUrl of WebHook destinations; not verified against the spec.
    // Event Grid never answers the full webhook URL (it may carry a key), only its base.
    const url = stringAt(props, 'endpointUrl') ?? '';
    const rest = Object.fromEntries(Object.entries(props).filter(([k]) => k !== 'endpointUrl'));
    out['properties'] = { maxEventsPerBatch: 1, preferredBatchSizeInKilobytes: 64, ...rest, endpointBaseUrl: url.split('?')[0] };
  } else if (!isJson(out['properties'])) {
    out['properties'] = {};
  }
  return out;
}
