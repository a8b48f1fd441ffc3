import { loadConfig, parseStorage } from '../../shared/config';
import { ConfigError } from '../../shared/errors';

const VAULT = { KEY_VAULT_URI: 'https://contoso-vault2.vault.azure.net' };
const CLIENT_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const RESOURCE_ID = '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/broker-id';
const identity = (tableServiceUri: string, who: { clientId?: string; resourceId?: string } = {}) => ({
  kind: 'identity',
  tableServiceUri,
  clientId: who.clientId,
  resourceId: who.resourceId,
});

describe('the storage setting (AzureWebJobsStorage and its identity-based forms)', () => {
  it.each([
    ['nothing', {}, { kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' }],
    [
      'blank values',
      { AzureWebJobsStorage: ' ', AzureWebJobsStorage__accountName: '' },
      { kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' },
    ],
    [
      'a connection string',
      { AzureWebJobsStorage: ' AccountName=contoso;AccountKey=a2V5 ' },
      { kind: 'connectionString', connectionString: 'AccountName=contoso;AccountKey=a2V5' },
    ],
    ['an account name', { AzureWebJobsStorage__accountName: 'contoso' }, identity('https://contoso.table.core.windows.net')],
    [
      'an account name with blob and queue URIs beside it',
      { AzureWebJobsStorage__accountName: 'contoso', AzureWebJobsStorage__blobServiceUri: 'https://contoso.blob.core.windows.net' },
      identity('https://contoso.table.core.windows.net'),
    ],
    [
      'a table service URI, without its trailing slash',
      { AzureWebJobsStorage__tableServiceUri: 'https://contoso.table.core.windows.net/' },
      identity('https://contoso.table.core.windows.net'),
    ],
    [
      'a loopback http table service URI (an emulator)',
      { AzureWebJobsStorage__tableServiceUri: 'http://127.0.0.1:10002/devstoreaccount1' },
      identity('http://127.0.0.1:10002/devstoreaccount1'),
    ],
    [
      'credential=managedidentity (any case)',
      { AzureWebJobsStorage__accountName: 'contoso', AzureWebJobsStorage__credential: 'ManagedIdentity' },
      identity('https://contoso.table.core.windows.net'),
    ],
    [
      'a user-assigned identity by client id',
      {
        AzureWebJobsStorage__accountName: 'contoso',
        AzureWebJobsStorage__credential: 'managedidentity',
        AzureWebJobsStorage__clientId: CLIENT_ID,
      },
      identity('https://contoso.table.core.windows.net', { clientId: CLIENT_ID }),
    ],
    [
      'a user-assigned identity by resource id',
      {
        AzureWebJobsStorage__tableServiceUri: 'https://contoso.table.core.windows.net',
        AzureWebJobsStorage__credential: 'managedidentity',
        AzureWebJobsStorage__managedIdentityResourceId: RESOURCE_ID,
      },
      identity('https://contoso.table.core.windows.net', { resourceId: RESOURCE_ID }),
    ],
  ])('reads %s', (_label, env, expected) => {
    const config = loadConfig({ ...VAULT, ...env });
    expect(config.storage).toEqual(expected);
    expect(Object.isFrozen(config.storage)).toBe(true);
  });

  it.each([
    [
      { AzureWebJobsStorage: 'UseDevelopmentStorage=true', AzureWebJobsStorage__accountName: 'contoso' },
      'AzureWebJobsStorage: a connection string excludes the identity-based AzureWebJobsStorage__accountName; set one or the other',
    ],
    [
      { AzureWebJobsStorage: 'UseDevelopmentStorage=true', AzureWebJobsStorage__clientId: CLIENT_ID },
      'AzureWebJobsStorage: a connection string excludes the identity-based AzureWebJobsStorage__clientId; set one or the other',
    ],
    [
      { AzureWebJobsStorage__accountName: 'contoso', AzureWebJobsStorage__tableServiceUri: 'https://contoso.table.core.windows.net' },
      'AzureWebJobsStorage__tableServiceUri: names the table endpoint, so AzureWebJobsStorage__accountName must not be set as well',
    ],
    [
      { AzureWebJobsStorage__accountName: 'Contoso_Storage' },
      'AzureWebJobsStorage__accountName: must be a storage account name (3-24 lower-case letters and digits), got "Contoso_Storage"',
    ],
    [
      { AzureWebJobsStorage__tableServiceUri: 'http://contoso.table.core.windows.net' },
      'AzureWebJobsStorage__tableServiceUri: must be an https URL (http only to localhost for local development), got "http://contoso.table.core.windows.net"',
    ],
    [{ AzureWebJobsStorage__tableServiceUri: 'contoso' }, 'AzureWebJobsStorage__tableServiceUri: "contoso" is not a URL'],
    [
      { AzureWebJobsStorage__tableServiceUri: 'https://contoso.table.core.windows.net/?sv=2024&sig=x' },
      'AzureWebJobsStorage__tableServiceUri: must be a table service URI like https://contoso.table.core.windows.net, got "https://contoso.table.core.windows.net/?sv=2024&sig=x"',
    ],
    [
      {
        AzureWebJobsStorage__blobServiceUri: 'https://contoso.blob.core.windows.net',
        AzureWebJobsStorage__queueServiceUri: 'https://contoso.queue.core.windows.net',
      },
      'AzureWebJobsStorage__blobServiceUri: needs AzureWebJobsStorage__accountName or AzureWebJobsStorage__tableServiceUri (the broker keeps its tables there)',
    ],
    [
      { AzureWebJobsStorage__credential: 'managedidentity' },
      'AzureWebJobsStorage__credential: needs AzureWebJobsStorage__accountName or AzureWebJobsStorage__tableServiceUri (the broker keeps its tables there)',
    ],
    [
      { AzureWebJobsStorage__clientId: CLIENT_ID },
      'AzureWebJobsStorage__clientId: needs AzureWebJobsStorage__accountName or AzureWebJobsStorage__tableServiceUri (the broker keeps its tables there)',
    ],
    [
      { AzureWebJobsStorage__accountName: 'contoso', AzureWebJobsStorage__credential: 'connectionstring' },
      'AzureWebJobsStorage__credential: must be managedidentity, got "connectionstring"',
    ],
    [
      { AzureWebJobsStorage__accountName: 'contoso', AzureWebJobsStorage__clientId: CLIENT_ID },
      'AzureWebJobsStorage__clientId: needs AzureWebJobsStorage__credential=managedidentity',
    ],
    [
      { AzureWebJobsStorage__accountName: 'contoso', AzureWebJobsStorage__managedIdentityResourceId: RESOURCE_ID },
      'AzureWebJobsStorage__managedIdentityResourceId: needs AzureWebJobsStorage__credential=managedidentity',
    ],
    [
      {
        AzureWebJobsStorage__accountName: 'contoso',
        AzureWebJobsStorage__credential: 'managedidentity',
        AzureWebJobsStorage__clientId: CLIENT_ID,
        AzureWebJobsStorage__managedIdentityResourceId: RESOURCE_ID,
      },
      'AzureWebJobsStorage__managedIdentityResourceId: names the identity, so AzureWebJobsStorage__clientId must not be set as well',
    ],
    [
      {
        AzureWebJobsStorage__accountName: 'contoso',
        AzureWebJobsStorage__credential: 'managedidentity',
        AzureWebJobsStorage__clientId: 'broker-id',
      },
      'AzureWebJobsStorage__clientId: must be the client id (a GUID) of a user-assigned managed identity, got "broker-id"',
    ],
    [
      {
        AzureWebJobsStorage__accountName: 'contoso',
        AzureWebJobsStorage__credential: 'managedidentity',
        AzureWebJobsStorage__managedIdentityResourceId: 'broker-id',
      },
      'AzureWebJobsStorage__managedIdentityResourceId: must be the ARM id of a user-assigned managed identity, got "broker-id"',
    ],
  ])('refuses %j in one line naming the setting', (env, message) => {
    const load = (): unknown => loadConfig({ ...VAULT, ...env });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(message);
  });

  it('is what the local host reads too, without the rest of the settings', () => {
    expect(parseStorage({ AzureWebJobsStorage__accountName: 'contoso' })).toEqual(identity('https://contoso.table.core.windows.net'));
    expect(parseStorage({})).toEqual({ kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' });
  });
});
