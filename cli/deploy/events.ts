/**
 * Key Vault events to the `secretEvents` function: per vault, its Event Grid system topic (Azure
 * allows one per vault, so an existing one is reused wherever it lives; a new one goes beside the
 * vault, in the vault's subscription and resource group, as the portal does) with a system-assigned
 * identity, that identity's right to write dead letters, and a subscription for the three secret
 * events with 30 attempts over 24 hours and dead letters to a blob container.
 */
import type { EventSubscription, SystemTopic } from '@azure/arm-eventgrid';
import { assignRole } from './access';
import type { Difference } from './changes';
import { differences } from './changes';
import type { VaultRef } from './deploymentFile';
import { DEAD_LETTER_CONTAINER, type Ctx } from './infrastructure';
import { describeAzureError, statusOf } from './azureErrors';
import { orAbsent, reconcile, retrying, step } from './reconcile';

export const SECRET_EVENT_TYPES = [
  'Microsoft.KeyVault.SecretNewVersionCreated',
  'Microsoft.KeyVault.SecretNearExpiry',
  'Microsoft.KeyVault.SecretExpired',
] as const;
/**
 * The subscription's name on each vault's system topic: one per broker app, so two deployments
 * (staging and production, say) can both follow one vault.
 */
export const eventSubscriptionName = (appName: string): string => `secret-broker-${appName.toLowerCase()}`.slice(0, 64).replace(/-+$/, '');
const EVENT_FUNCTION = 'secretEvents';
/** How long a just-published app may take to index its functions, and how often to look. */
const FUNCTION_WAIT_MS = 5 * 60_000;
const FUNCTION_WAIT_INTERVAL_MS = 5_000;

/** Waits until the app's host lists `name` among its functions (a 404 until it has indexed the package). */
async function waitForFunction(ctx: Ctx, name: string): Promise<void> {
  const { d, clients } = ctx;
  let told = false;
  await retrying(
    () => clients.web.webApps.getFunction(d.resourceGroup, d.appName, name),
    (err) => {
      if (statusOf(err) !== 404) return false;
      if (!told) ctx.run.progress.line(`  waiting for ${d.appName} to index ${name}`);
      told = true;
      return true;
    },
    { intervalMs: FUNCTION_WAIT_INTERVAL_MS, deadlineMs: FUNCTION_WAIT_MS },
  );
}

export interface VaultFacts extends VaultRef {
  readonly location: string;
}

/** The system topic of a vault: the existing one (found by its source), or one to create in the vault's resource group. */
async function findSystemTopic(ctx: Ctx, vault: VaultFacts): Promise<{ resourceGroup: string; name: string; subscriptionId: string }> {
  const client = ctx.clients.eventGrid(vault.subscriptionId);
  const matching = async (topics: AsyncIterable<SystemTopic>): Promise<SystemTopic | undefined> => {
    for await (const topic of topics) {
      if (topic.source?.toLowerCase() === vault.id.toLowerCase() && topic.id) return topic;
    }
    return undefined;
  };
  const existing = await step(`system topics of subscription ${vault.subscriptionId}`, 'list', async () => {
    try {
      return await matching(client.systemTopics.listBySubscription());
    } catch (err: unknown) {
      // Without read on the whole subscription, look where this deployment would put it.
      if (statusOf(err) !== 403) throw err;
      ctx.run.progress.line(
        `  cannot list the system topics of subscription ${vault.subscriptionId} (403); looking in ${vault.resourceGroup} only`,
      );
      return matching(client.systemTopics.listByResourceGroup(vault.resourceGroup));
    }
  });
  if (existing?.id && existing.name) {
    const rg = /\/resourceGroups\/([^/]+)\//i.exec(existing.id)?.[1] ?? ctx.d.resourceGroup;
    return { resourceGroup: rg, name: existing.name, subscriptionId: vault.subscriptionId };
  }
  // Where the portal puts one too: beside the vault (a system topic lives in its source's subscription).
  return { resourceGroup: vault.resourceGroup, name: `${vault.name}-events`.slice(0, 128), subscriptionId: vault.subscriptionId };
}

/** The topic, the dead-letter role of its identity and the subscription to `secretEvents`. */
export async function subscribeVault(ctx: Ctx, vault: VaultFacts, siteId: string | undefined, storageId: string): Promise<void> {
  const { d } = ctx;
  const client = ctx.clients.eventGrid(vault.subscriptionId);
  const where = await findSystemTopic(ctx, vault);
  const topicDesired = { source: vault.id, topicType: 'Microsoft.KeyVault.vaults', identity: { type: 'SystemAssigned' } };
  const topic = await reconcile<SystemTopic>(ctx.run, {
    resource: `Event Grid system topic ${where.name} (vault ${vault.name})`,
    read: () => orAbsent(() => client.systemTopics.get(where.resourceGroup, where.name)),
    desired: topicDesired,
    // A topic made elsewhere may have a user-assigned identity as well: system-assigned is what is needed.
    compare: (t): Difference[] => [
      ...differences({ source: vault.id, topicType: topicDesired.topicType }, t),
      ...(/SystemAssigned/i.test(t.identity?.type ?? '') ? [] : [{ path: 'identity.type', from: t.identity?.type, to: 'SystemAssigned' }]),
    ],
    apply: (t) =>
      client.systemTopics.beginCreateOrUpdateAndWait(where.resourceGroup, where.name, {
        location: t?.location ?? vault.location,
        source: vault.id,
        topicType: topicDesired.topicType,
        tags: t?.tags,
        identity:
          t?.identity?.type && /UserAssigned/i.test(t.identity.type)
            ? { ...t.identity, type: 'SystemAssigned, UserAssigned' }
            : { type: 'SystemAssigned' },
      }),
  });
  const deadLetterScope = `${storageId}/blobServices/default/containers/${DEAD_LETTER_CONTAINER}`;
  await assignRole(
    ctx,
    { label: `system topic ${where.name}`, objectId: topic?.identity?.principalId, type: 'ServicePrincipal' },
    'Storage Blob Data Contributor',
    deadLetterScope,
  );

  const functionId = `${siteId ?? `/subscriptions/${d.subscriptionId}/resourceGroups/${d.resourceGroup}/providers/Microsoft.Web/sites/${d.appName}`}/functions/${EVENT_FUNCTION}`;
  const desired: EventSubscription = {
    destination: { endpointType: 'AzureFunction', resourceId: functionId, maxEventsPerBatch: 1, preferredBatchSizeInKilobytes: 64 },
    filter: { includedEventTypes: [...SECRET_EVENT_TYPES] },
    eventDeliverySchema: d.eventSchema,
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 },
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' },
      deadLetterDestination: { endpointType: 'StorageBlob', resourceId: storageId, blobContainerName: DEAD_LETTER_CONTAINER },
    },
  };
  const subscriptionName = eventSubscriptionName(d.appName);
  await reconcile<EventSubscription>(ctx.run, {
    resource: `event subscription ${where.name}/${subscriptionName} -> ${d.appName}/${EVENT_FUNCTION}`,
    read: () => orAbsent(() => client.systemTopicEventSubscriptions.get(where.resourceGroup, where.name, subscriptionName)),
    desired,
    compare: (s) => [
      ...differences({ destination: { endpointType: 'AzureFunction', resourceId: functionId, maxEventsPerBatch: 1 } }, s),
      ...differences({ filter: { includedEventTypes: [...SECRET_EVENT_TYPES] } }, s, { unordered: true }),
      ...differences(
        {
          eventDeliverySchema: desired.eventDeliverySchema,
          retryPolicy: desired.retryPolicy,
          deadLetterWithResourceIdentity: desired.deadLetterWithResourceIdentity,
        },
        s,
      ),
    ],
    // Event Grid checks that the function exists (and reads the host's keys) when the subscription
    // is made: wait until the host has indexed it, then retry while Event Grid still cannot see it.
    apply: async () => {
      await waitForFunction(ctx, EVENT_FUNCTION);
      return retrying(
        () => client.systemTopicEventSubscriptions.beginCreateOrUpdateAndWait(where.resourceGroup, where.name, subscriptionName, desired),
        (err) => statusOf(err) === 400 && /endpoint validation|should pre-exist|not found/i.test(describeAzureError(err)),
        {
          intervalMs: FUNCTION_WAIT_INTERVAL_MS,
          deadlineMs: FUNCTION_WAIT_MS,
          onRetry: () => ctx.run.progress.line(`  Event Grid cannot reach ${d.appName}/${EVENT_FUNCTION} yet; retrying`),
        },
      );
    },
  });
}
