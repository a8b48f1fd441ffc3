/**
 * Resource providers: a subscription must be registered for a namespace before resources of it can
 * be created. The portal and ARM template deployments register them on the way; calls through the
 * management SDKs do not, so a fresh subscription would answer `MissingSubscriptionRegistration`.
 */
import { ResourceManagementClient } from '@azure/arm-resources';
import type { Ctx } from './infrastructure';
import { reconcile, retrying } from './reconcile';

/** What the deployment creates in its own subscription. */
export const DEPLOYMENT_PROVIDERS = ['Microsoft.Storage', 'Microsoft.OperationalInsights', 'Microsoft.Insights', 'Microsoft.Web'] as const;
/** What it creates in each vault's subscription (the system topic lives beside its vault). */
export const EVENT_PROVIDER = 'Microsoft.EventGrid';
/** The rotation identity's namespace, registered only when the deployment file asks for rotation. */
export const IDENTITY_PROVIDER = 'Microsoft.ManagedIdentity';

const REGISTRATION_DEADLINE_MS = 10 * 60_000;
const REGISTRATION_POLL_MS = 5_000;

/** Registers each `namespace` in `subscriptionId` where it is not yet, and waits until it is. */
export async function registerProviders(ctx: Ctx, subscriptionId: string, namespaces: readonly string[]): Promise<void> {
  const client =
    subscriptionId.toLowerCase() === ctx.d.subscriptionId.toLowerCase()
      ? ctx.clients.resources
      : new ResourceManagementClient(ctx.clients.credential, subscriptionId);
  const where = subscriptionId.toLowerCase() === ctx.d.subscriptionId.toLowerCase() ? '' : ` in subscription ${subscriptionId}`;
  for (const namespace of namespaces) {
    await reconcile(ctx.run, {
      resource: `resource provider ${namespace}${where}`,
      read: async () => {
        const provider = await client.providers.get(namespace);
        return provider.registrationState === 'Registered' ? provider : undefined;
      },
      desired: {},
      compare: () => [],
      apply: async () => {
        await client.providers.register(namespace);
        return retrying(
          async () => {
            const provider = await client.providers.get(namespace);
            if (provider.registrationState !== 'Registered')
              throw new Error(`${namespace} is ${provider.registrationState ?? 'not registered'}`);
            return provider;
          },
          () => true,
          { intervalMs: REGISTRATION_POLL_MS, deadlineMs: REGISTRATION_DEADLINE_MS },
        );
      },
    });
  }
}
