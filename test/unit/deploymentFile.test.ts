import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { appSettingsFor, KNOWN_AFTER_CREATE, parseDeployment, readDeploymentFile } from '../../cli/deploy/deploymentFile';
import { loadConfig } from '../../shared/config';
import { ConfigError } from '../../shared/errors';

const SUB = '11111111-2222-3333-4444-555555555555';
const vaultId = (name: string, sub = SUB): string =>
  `/subscriptions/${sub}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/${name}`;
const base = {
  subscriptionId: SUB,
  resourceGroup: 'rg-broker',
  location: 'westeurope',
  appName: 'Contoso-Secret-Broker',
  vaults: { partner: vaultId('partner-vault'), default: vaultId('main-vault') },
  settings: {
    ACCESS_POLICY: { callers: [{ name: 'erp', identities: [{ apiKeySha256: 'a'.repeat(64) }], allow: ['erp-*'] }] },
    CACHE_TTL_SECONDS: 120,
  },
};
const found = {
  vaultUris: new Map([
    ['default', 'https://main-vault.vault.azure.net/'],
    ['partner', 'https://partner-vault.vault.azure.net/'],
  ]),
  appInsightsConnectionString:
    'InstrumentationKey=9f1b6c2e-0000-4000-8000-000000000001;IngestionEndpoint=https://westeurope-0.in.applicationinsights.azure.com/',
  notifyEndpoint: undefined,
};

describe('parseDeployment', () => {
  it('fills in the names, puts the default vault first and writes settings as app setting strings', () => {
    const d = parseDeployment(base);
    expect(d).toMatchObject({
      storageAccount: 'contososecretbrokerst',
      logAnalyticsWorkspace: 'Contoso-Secret-Broker-logs',
      applicationInsights: 'Contoso-Secret-Broker',
      plan: 'Contoso-Secret-Broker-plan',
      instanceMemoryMB: 2048,
      maximumInstanceCount: 100,
      eventSchema: 'CloudEventSchemaV1_0',
      smokeTest: true,
    });
    expect(d.vaults.map((v) => [v.alias, v.name, v.resourceGroup])).toEqual([
      ['default', 'main-vault', 'rg-vaults'],
      ['partner', 'partner-vault', 'rg-vaults'],
    ]);
    expect(d.settings).toEqual({ ACCESS_POLICY: JSON.stringify(base.settings.ACCESS_POLICY), CACHE_TTL_SECONDS: '120' });
  });

  it('keeps a long app name within the 24 characters of a storage account', () => {
    expect(parseDeployment({ ...base, appName: 'a-very-long-function-app-name-for-the-broker' }).storageAccount).toMatch(
      /^[a-z0-9]{3,24}$/,
    );
  });

  it.each([
    [{ subscriptionId: 'nope' }, 'subscriptionId must be a subscription id (a GUID)'],
    [{ location: 'West Europe' }, 'location must be an Azure region name'],
    [{ appName: '-broker' }, 'appName must be 2-60 letters'],
    [{ storageAccount: 'Has-Dashes' }, 'storageAccount must be 3-24 lower-case letters and digits'],
    [{ vaults: { partner: vaultId('partner-vault') } }, 'vaults must name the "default" vault'],
    [
      { vaults: { default: '/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z' } },
      'vaults.default must be a vault resource id',
    ],
    [{ vaults: { default: vaultId('same'), other: vaultId('same') } }, 'vaults: "same" is named twice'],
    [{ instanceMemoryMB: 1024 }, 'instanceMemoryMB must be 512, 2048 or 4096'],
    [{ events: { schema: 'CustomInputSchema' } }, 'events.schema must be CloudEventSchemaV1_0 or EventGridSchema'],
    [{ unknownField: 1 }, 'unknownField'],
    [{ settings: { KEY_VAULT_URI: 'https://x.vault.azure.net/' } }, 'settings.KEY_VAULT_URI is set by the deployment itself'],
    [{ settings: { AzureWebJobsStorage: 'UseDevelopmentStorage=true' } }, 'settings.AzureWebJobsStorage is set by the deployment itself'],
    [{ settings: { FUNCTIONS_WORKER_RUNTIME: 'node' } }, 'settings.FUNCTIONS_WORKER_RUNTIME is set by the deployment itself'],
    [{ settings: { CACHE_TTL: 5 } }, 'settings.CACHE_TTL is not a setting of the broker'],
    [{ settings: { HEALTH_CHECK_SCHEDULE: '00:15:00' } }, 'Flex Consumption takes NCRONTAB only'],
    [
      {
        notificationTopic: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.EventGrid/topics/topic1`,
        settings: { NOTIFY_EVENTGRID_ENDPOINT: 'https://x' },
      },
      'comes from notificationTopic',
    ],
  ])('refuses %j', (patch, message) => {
    expect(() => parseDeployment({ ...base, ...patch }, 'deploy.json')).toThrow(ConfigError);
    expect(() => parseDeployment({ ...base, ...patch }, 'deploy.json')).toThrow(message);
  });

  it('reads a file and names it in its errors', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'deployfile-'));
    const good = path.join(dir, 'good.json');
    writeFileSync(good, JSON.stringify(base));
    expect(readDeploymentFile(good).appName).toBe('Contoso-Secret-Broker');
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, '{ not json');
    expect(() => readDeploymentFile(bad)).toThrow(`${bad}: is not valid JSON`);
    expect(() => readDeploymentFile(path.join(dir, 'missing.json'))).toThrow('cannot be read (ENOENT)');
  });
});

describe('appSettingsFor', () => {
  it('derives the vaults, identity-based storage and telemetry, and the app accepts the result', () => {
    const settings = appSettingsFor(parseDeployment(base), found);
    expect(settings).toMatchObject({
      AzureWebJobsStorage__accountName: 'contososecretbrokerst',
      KEY_VAULT_URI: 'https://main-vault.vault.azure.net/',
      KEY_VAULT_ALIASES: 'partner=https://partner-vault.vault.azure.net/',
      KEY_VAULT_RESOURCE_IDS: `default=${vaultId('main-vault')};partner=${vaultId('partner-vault')}`,
      APPLICATIONINSIGHTS_CONNECTION_STRING: found.appInsightsConnectionString,
      CACHE_TTL_SECONDS: '120',
    });
    expect(Object.keys(settings)).not.toContain('FUNCTIONS_WORKER_RUNTIME');
    // Nothing but the app's own telemetry leaves, unless the file opts in.
    expect(settings).toMatchObject({ APPLICATION_INSIGHTS_NO_STATSBEAT: 'true', APPLICATIONINSIGHTS_SDKSTATS_DISABLED: 'true' });
    expect(Object.keys(appSettingsFor(parseDeployment({ ...base, sdkStatistics: true }), found))).not.toContain(
      'APPLICATION_INSIGHTS_NO_STATSBEAT',
    );
    const config = loadConfig(settings);
    expect(config.storage).toEqual({
      kind: 'identity',
      tableServiceUri: 'https://contososecretbrokerst.table.core.windows.net',
      clientId: undefined,
      resourceId: undefined,
    });
    expect([...config.vaults.keys()]).toEqual(['default', 'partner']);
  });

  it('stands a placeholder for what Azure assigns on creation, and still checks the rest', () => {
    const settings = appSettingsFor(parseDeployment(base), { ...found, appInsightsConnectionString: undefined });
    expect(settings.APPLICATIONINSIGHTS_CONNECTION_STRING).toBe(KNOWN_AFTER_CREATE);
  });

  it.each([
    [{ ACCESS_POLICY: { callers: [{ name: 'x' }] } }, 'settings: ACCESS_POLICY:'],
    [
      { VAULT_EXPECTATIONS: { elsewhere: { firewall: 'on', readers: [] } } },
      'settings: VAULT_EXPECTATIONS: "elsewhere" is not a configured vault alias',
    ],
    [{ AUTH_ISSUER: 'http://login.example.com/tenant/v2.0', AUTH_AUDIENCE: 'api://broker' }, 'settings: AUTH_ISSUER'],
    [{ SIGNING_KEY_VAULT: 'nowhere' }, 'settings: SIGNING_KEY_VAULT'],
  ])('refuses settings the app would refuse at start-up: %j', (settings, message) => {
    expect(() => appSettingsFor(parseDeployment({ ...base, settings }), found)).toThrow(message);
  });
});

describe('the sample deployment file', () => {
  it('parses, and its settings pass the app checks', () => {
    const d = readDeploymentFile(path.resolve(__dirname, '../../cli/deploy/deployment.sample.json'));
    expect(d.vaults.map((v) => v.alias)).toEqual(['default', 'bc']);
    const settings = appSettingsFor(d, {
      vaultUris: new Map([
        ['default', 'https://contoso-vault2.vault.azure.net/'],
        ['bc', 'https://contoso-bc-vault.vault.azure.net/'],
      ]),
      appInsightsConnectionString: undefined,
      notifyEndpoint: undefined,
    });
    expect(settings.KEY_VAULT_ALIASES).toBe('bc=https://contoso-bc-vault.vault.azure.net/');
  });
});
