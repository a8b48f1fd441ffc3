/**
 * The management clients a deployment drives, all on one credential (`DefaultAzureCredential`:
 * `az login`, `AZURE_*` variables, a managed identity...). Vaults and topics may live in other
 * subscriptions, so the per-subscription clients are made on demand.
 */
import type { TokenCredential } from '@azure/core-auth';
import { ApplicationInsightsManagementClient } from '@azure/arm-appinsights';
import { WebSiteManagementClient } from '@azure/arm-appservice';
import { AuthorizationManagementClient } from '@azure/arm-authorization';
import { EventGridManagementClient } from '@azure/arm-eventgrid';
import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { OperationalInsightsManagementClient } from '@azure/arm-operationalinsights';
import { ResourceManagementClient } from '@azure/arm-resources';
import { StorageManagementClient } from '@azure/arm-storage';
import { errorBodyPolicy } from './azureErrors';

export interface AzureClients {
  readonly credential: TokenCredential;
  readonly resources: ResourceManagementClient;
  readonly storage: StorageManagementClient;
  readonly workspaces: OperationalInsightsManagementClient;
  readonly insights: ApplicationInsightsManagementClient;
  readonly web: WebSiteManagementClient;
  /** Role assignments are made at any scope; the client's subscription only matters for its defaults. */
  authorization(subscriptionId: string): AuthorizationManagementClient;
  keyVault(subscriptionId: string): KeyVaultManagementClient;
  eventGrid(subscriptionId: string): EventGridManagementClient;
}

/** Every client keeps its error bodies, so a failure is told in Azure's words (see azureErrors.ts). */
const CLIENT_OPTIONS = { additionalPolicies: [{ policy: errorBodyPolicy, position: 'perCall' as const }] };

export function createAzureClients(credential: TokenCredential, subscriptionId: string): AzureClients {
  const perSubscription = <T>(make: (id: string) => T): ((id: string) => T) => {
    const made = new Map<string, T>();
    return (id) => {
      const key = id.toLowerCase();
      let client = made.get(key);
      if (!client) made.set(key, (client = make(id)));
      return client;
    };
  };
  return {
    credential,
    resources: new ResourceManagementClient(credential, subscriptionId, CLIENT_OPTIONS),
    storage: new StorageManagementClient(credential, subscriptionId, CLIENT_OPTIONS),
    workspaces: new OperationalInsightsManagementClient(credential, subscriptionId, CLIENT_OPTIONS),
    insights: new ApplicationInsightsManagementClient(credential, subscriptionId, CLIENT_OPTIONS),
    web: new WebSiteManagementClient(credential, subscriptionId, CLIENT_OPTIONS),
    authorization: perSubscription((id) => new AuthorizationManagementClient(credential, id, CLIENT_OPTIONS)),
    keyVault: perSubscription((id) => new KeyVaultManagementClient(credential, id, CLIENT_OPTIONS)),
    eventGrid: perSubscription((id) => new EventGridManagementClient(credential, id, CLIENT_OPTIONS)),
  };
}
