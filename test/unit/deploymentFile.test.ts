import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  appSettingsFor,
  checkSettingsOffline,
  KNOWN_AFTER_CREATE,
  parseDeployment,
  readDeploymentFile,
} from '../../cli/deploy/deploymentFile';
import {
  APPLICATION_READWRITE_OWNEDBY,
  entraAdminCommands,
  GRAPH_APP_ID,
  PRINCIPAL_KNOWN_AFTER_CREATE,
} from '../../cli/deploy/entraCommands';
import { parseJsonText } from '../../local/jsonText';
import { applySettingsFile } from '../../local/localSettings';
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

  const TOP_LEVEL =
    '$schema, subscriptionId, resourceGroup, location, appName, storageAccount, logAnalyticsWorkspace, applicationInsights, plan, ' +
    'instanceMemoryMB, maximumInstanceCount, tags, vaults, events, notificationTopic, identity, rotation, smokeTest, sdkStatistics, settings';

  it.each([
    [{ unknownField: 1 }, `deploy.json: unknown field "unknownField" (allowed: ${TOP_LEVEL})`],
    [{ events: { schema: 'EventGridSchema', filter: 'x' } }, 'deploy.json: events: unknown field "filter" (allowed: schema)'],
    // A misspelt field is reported rather than the missing one it stands for.
    [{ subscriptionId: undefined, subscriptionID: SUB }, `deploy.json: unknown field "subscriptionID" (allowed: ${TOP_LEVEL})`],
    [{ events: 'CloudEventSchemaV1_0' }, 'deploy.json: events must be a JSON object'],
  ])('names an unknown field with the allowed ones: %j', (patch, message) => {
    const json = JSON.parse(JSON.stringify({ ...base, ...patch })) as unknown;
    expect(() => parseDeployment(json, 'deploy.json')).toThrow(new ConfigError(message));
  });

  it('names a missing field, and refuses a file that is not an object', () => {
    const json = JSON.parse(JSON.stringify({ ...base, resourceGroup: undefined })) as unknown;
    expect(() => parseDeployment(json, 'deploy.json')).toThrow(new ConfigError('deploy.json: resourceGroup is required'));
    expect(() => parseDeployment([], 'deploy.json')).toThrow(new ConfigError('deploy.json: must be a JSON object'));
    expect(() => parseDeployment('deploy', 'deploy.json')).toThrow(new ConfigError('deploy.json: must be a JSON object'));
  });

  it.each([
    [
      { ACCESS_POLICY: { callers: [{ name: 'x' }] } },
      'deploy.json: settings: ACCESS_POLICY: callers[0].identities Invalid key: Expected "identities" but received undefined',
    ],
    [{ ACCESS_POLICY: '{callers:' }, 'deploy.json: settings: ACCESS_POLICY: is not valid JSON'],
    [
      { VAULT_EXPECTATIONS: { elsewhere: { firewall: 'on', readers: [] } } },
      'deploy.json: settings: VAULT_EXPECTATIONS: "elsewhere" is not a configured vault alias (known: default, partner)',
    ],
    [
      { AUTH_ISSUER: 'http://login.example.com/tenant/v2.0', AUTH_AUDIENCE: 'api://broker' },
      'deploy.json: settings: AUTH_ISSUER: must be an https URL (http only to localhost for local development), got "http://login.example.com/tenant/v2.0"',
    ],
    [
      { SIGNING_KEY_VAULT: 'nowhere' },
      'deploy.json: settings: SIGNING_KEY_VAULT: "nowhere" is not a configured vault alias (known: default, partner)',
    ],
  ])('checks the settings as the app would at start-up, offline, when the file is read: %j', (settings, message) => {
    expect(() => parseDeployment({ ...base, settings }, 'deploy.json')).toThrow(new ConfigError(message));
  });

  it('checks the settings offline with a placeholder for each vault URI and for what Azure assigns on creation', () => {
    const topic = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.EventGrid/topics/topic1`;
    const d = parseDeployment({ ...base, notificationTopic: topic });
    expect(() => checkSettingsOffline(d)).not.toThrow();
  });

  it('reads a file and names it in its errors', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'deployfile-'));
    const good = path.join(dir, 'good.json');
    writeFileSync(good, JSON.stringify(base));
    expect(readDeploymentFile(good).appName).toBe('Contoso-Secret-Broker');
    const withBom = path.join(dir, 'bom.json');
    writeFileSync(withBom, `\ufeff${JSON.stringify(base, null, 2)}`);
    expect(readDeploymentFile(withBom).appName).toBe('Contoso-Secret-Broker');
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, '{\n  "subscriptionId": "x",\n  "location": "westeurope"\n  "appName": "broker"\n}\n');
    expect(() => readDeploymentFile(bad)).toThrow(new ConfigError(`${bad}:4:3: Expected ',' or '}' after property value`));
    expect(() => readDeploymentFile(path.join(dir, 'missing.json'))).toThrow('cannot be read (ENOENT)');
  });
});

describe('rotation', () => {
  const APP_1 = '5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e';
  const APP_2 = '6c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f';

  it('is off unless asked; "rotation": {} names the identity after the app, in the deployment group', () => {
    expect(parseDeployment(base).rotation).toBeUndefined();
    expect(parseDeployment({ ...base, rotation: {} }).rotation).toEqual({
      identityName: 'Contoso-Secret-Broker-rotation',
      identityId: `/subscriptions/${SUB}/resourceGroups/rg-broker/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Contoso-Secret-Broker-rotation`,
      targets: {},
      applications: [],
    });
    const targets = { 'erp-client-secret': APP_1, 'partner/sftp-app': APP_2, 'erp-client-secret-2': APP_1.toUpperCase() };
    expect(parseDeployment({ ...base, rotation: { identityName: 'broker_rotator', targets } }).rotation).toMatchObject({
      identityName: 'broker_rotator',
      identityId: expect.stringMatching(/\/userAssignedIdentities\/broker_rotator$/) as string,
      targets,
      // One application per distinct id, whatever the case.
      applications: [APP_1, APP_2],
    });
  });

  it.each([
    [{ rotation: true }, 'deploy.json: rotation must be a JSON object'],
    [{ rotation: { identity: 'x' } }, 'deploy.json: rotation: unknown field "identity" (allowed: identityName, targets)'],
    [{ rotation: { applications: [APP_1] } }, 'deploy.json: rotation: unknown field "applications" (allowed: identityName, targets)'],
    [{ rotation: { identityName: 'ab' } }, 'deploy.json: rotation.identityName must be 3-128 letters, digits, hyphens and underscores'],
    [{ rotation: { identityName: '-rotation' } }, 'deploy.json: rotation.identityName must be 3-128 letters'],
    [{ rotation: { targets: { erp: 'fo-app' } } }, 'deploy.json: rotation.targets.erp must be an application object id (a GUID)'],
    [{ rotation: { targets: [APP_1] } }, 'deploy.json: rotation.targets must be a JSON object of "<secret>" or "<alias>/<secret>"'],
    [
      { rotation: { targets: { 'nowhere/erp': APP_1 } } },
      'deploy.json: settings: ROTATION_TARGETS: "nowhere/erp" names vault "nowhere", which is not configured',
    ],
    [
      { rotation: {}, settings: { ROTATION_TARGETS: { erp: APP_1 } } },
      'deploy.json: settings.ROTATION_TARGETS is set by the deployment itself',
    ],
    [
      { rotation: {}, settings: { ROTATION_IDENTITY_CLIENT_ID: '0d4c2f8e-6a1b-4f3d-8e5c-7b9a1c2d3e4f' } },
      'deploy.json: settings.ROTATION_IDENTITY_CLIENT_ID is set by the deployment itself',
    ],
    [
      { settings: { ROTATION_RETIRE_AFTER_HOURS: 48 } },
      'deploy.json: settings.ROTATION_RETIRE_AFTER_HOURS has no effect without "rotation"; add "rotation": {} or remove it',
    ],
    [
      {
        identity: `/subscriptions/${SUB}/resourceGroups/rg-broker/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared-id`,
        rotation: { identityName: 'shared-id' },
      },
      `deploy.json: rotation.identityName names the app's own identity ("identity"); rotation needs an identity of its own`,
    ],
    [
      { rotation: {}, settings: { ROTATION_ADOPTION_WINDOW_HOURS: 'soon' } },
      'deploy.json: settings: ROTATION_ADOPTION_WINDOW_HOURS: must be a number of hours',
    ],
  ] as Array<[{ settings?: Record<string, unknown> } & Record<string, unknown>, string]>)('refuses %j', (patch, message) => {
    const json = JSON.parse(JSON.stringify({ ...base, ...patch, settings: { ...base.settings, ...patch.settings } })) as unknown;
    expect(() => parseDeployment(json, 'deploy.json')).toThrow(ConfigError);
    expect(() => parseDeployment(json, 'deploy.json')).toThrow(message);
  });

  it('sets ROTATION_IDENTITY_CLIENT_ID to the identity’s client id, which the app takes as rotation on', () => {
    const clientId = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
    const d = parseDeployment({ ...base, rotation: {}, settings: { ...base.settings, ROTATION_RETIRE_AFTER_HOURS: 24 } });
    const settings = appSettingsFor(d, { ...found, rotationClientId: clientId });
    expect(settings).toMatchObject({ ROTATION_IDENTITY_CLIENT_ID: clientId, ROTATION_RETIRE_AFTER_HOURS: '24', ROTATION_TARGETS: '{}' });
    expect(loadConfig(settings).rotation).toMatchObject({ identityClientId: clientId, retireAfterHours: 24, targets: new Map() });
    // Before the identity exists (--what-if), a placeholder; the rest is still checked.
    expect(appSettingsFor(d, found).ROTATION_IDENTITY_CLIENT_ID).toBe(KNOWN_AFTER_CREATE);
    // Without rotation the setting is absent: the broker never writes to a vault.
    const off = appSettingsFor(parseDeployment(base), { ...found, rotationClientId: clientId });
    expect(Object.keys(off)).not.toContain('ROTATION_IDENTITY_CLIENT_ID');
    expect(Object.keys(off)).not.toContain('ROTATION_TARGETS');
    expect(loadConfig(off).rotation).toBeUndefined();
  });

  it('sets ROTATION_TARGETS from rotation.targets, which the app takes as the secrets that may rotate', () => {
    const d = parseDeployment({ ...base, rotation: { targets: { 'erp-client-secret': APP_1 } } });
    const settings = appSettingsFor(d, { ...found, rotationClientId: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' });
    expect(JSON.parse(settings.ROTATION_TARGETS ?? 'null')).toEqual({ 'erp-client-secret': APP_1 });
    expect([...(loadConfig(settings).rotation?.targets ?? [])]).toEqual([['default/erp-client-secret', APP_1]]);
  });
});

describe('entraAdminCommands', () => {
  const rotation = parseDeployment({
    ...base,
    rotation: {
      targets: {
        'erp-client-secret': '5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e',
        'erp-client-secret-b': '5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e',
        'sftp-app': '6c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
      },
    },
  }).rotation;
  const principal = 'd4c3b2a1-0f9e-4d8c-8b7a-6f5e4d3c2b1a';

  it('prints the Graph app role grant and one owner command per distinct application of the targets, the principal id filled in', () => {
    if (!rotation) throw new Error('rotation expected');
    const lines = entraAdminCommands(rotation, principal);
    const text = lines.join('\n');
    expect(text).toContain(`graphSp=$(az ad sp show --id ${GRAPH_APP_ID} --query id --output tsv)`);
    expect(lines).toContain(
      `  az rest --method post --url "https://graph.microsoft.com/v1.0/servicePrincipals/$graphSp/appRoleAssignedTo" --headers Content-Type=application/json --body "{\\"principalId\\":\\"${principal}\\",\\"resourceId\\":\\"$graphSp\\",\\"appRoleId\\":\\"${APPLICATION_READWRITE_OWNEDBY}\\"}"`,
    );
    expect(rotation.applications).toEqual(['5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e', '6c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f']);
    expect(lines.filter((l) => l.includes('/owners/$ref'))).toHaveLength(2);
    for (const app of rotation.applications) {
      expect(lines).toContain(
        `  az rest --method post --url 'https://graph.microsoft.com/v1.0/applications/${app}/owners/$ref' --headers Content-Type=application/json --body '{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/${principal}"}'`,
      );
    }
    expect(APPLICATION_READWRITE_OWNEDBY).toBe('18a4783c-866b-4cc7-a460-3d5e5662c884');
    expect(GRAPH_APP_ID).toBe('00000003-0000-0000-c000-000000000000');
  });

  it('stands placeholders for an identity not created yet and for applications the file does not list', () => {
    const none = parseDeployment({ ...base, rotation: {} }).rotation;
    if (!none) throw new Error('rotation expected');
    const text = entraAdminCommands(none, undefined).join('\n');
    expect(text).toContain(PRINCIPAL_KNOWN_AFTER_CREATE);
    expect(text).toContain('/applications/<application object id>/owners/$ref');
  });
});

describe('JSON syntax errors name the file, line and column', () => {
  it.each([
    ['{ not json', "deploy.json:1:3: Expected property name or '}'"],
    ['{\n  "smokeTest": tru\n}', "deploy.json:2:19: Unexpected token '\\n'"],
    ['{\n  "smokeTest": yes\n}', "deploy.json:2:16: Unexpected token 'y'"],
    ['{\r\n  "a": 1,\r\n}', 'deploy.json:3:1: Expected double-quoted property name'],
    ['{"a": 1}}', 'deploy.json:1:9: Unexpected non-whitespace character after JSON'],
    ['{"a": 01}', 'deploy.json:1:8: Unexpected number'],
    ['{"a": "line\nbreak"}', 'deploy.json:1:12: Bad control character in string literal'],
    ['{"a": [1, 2', "deploy.json:1:12: Expected ',' or ']' after array element"],
    ['{"a": tru', 'deploy.json:1:10: Unexpected end of JSON input'],
    ['{"a": "abc', 'deploy.json:1:11: Unterminated string'],
    ['', 'deploy.json:1:1: Unexpected end of JSON input'],
    ['\n\n  }', "deploy.json:3:3: Unexpected token '}'"],
  ])('%j', (text, message) => {
    expect(() => parseJsonText(text, 'deploy.json')).toThrow(message);
    expect(() => parseJsonText(text, 'deploy.json')).toThrow(expect.objectContaining({ message }) as Error);
  });

  it('parses what JSON.parse parses, a byte order mark ignored', () => {
    expect(parseJsonText('\ufeff{"a": [1, {"b": null}]}', 'x.json')).toEqual({ a: [1, { b: null }] });
  });

  it('names the line and column of a settings file too', () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'settingsfile-')), 'local.settings.json');
    writeFileSync(file, '{\n  "Values": {\n    "KEY_VAULT_URI": "https://x.vault.azure.net/",\n  }\n}\n');
    expect(() => applySettingsFile(file, {})).toThrow('local.settings.json:4:3: Expected double-quoted property name');
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
    // Telemetry with the system identity's Entra token: the component takes nothing else.
    expect(settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING).toBe('Authorization=AAD');
    expect(config.appInsightsAuthentication).toEqual({ clientId: undefined });
  });

  it('with a user-assigned identity, every client picks it: AZURE_CLIENT_ID, the host storage and telemetry', () => {
    const identity = `/subscriptions/${SUB}/resourceGroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/broker-id`;
    const clientId = '0d4c2f8e-6a1b-4f3d-8e5c-7b9a1c2d3e4f';
    const settings = appSettingsFor(parseDeployment({ ...base, identity }), { ...found, identityClientId: clientId });
    expect(settings).toMatchObject({
      AZURE_CLIENT_ID: clientId,
      AzureWebJobsStorage__accountName: 'contososecretbrokerst',
      AzureWebJobsStorage__credential: 'managedidentity',
      AzureWebJobsStorage__clientId: clientId,
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: `ClientId=${clientId};Authorization=AAD`,
    });
    const config = loadConfig(settings);
    expect(config.storage).toMatchObject({ kind: 'identity', clientId });
    expect(config.appInsightsAuthentication).toEqual({ clientId });
    expect(() => parseDeployment({ ...base, identity: '/subscriptions/x/resourceGroups/y/providers/Microsoft.Web/sites/z' })).toThrow(
      /identity must be a user-assigned identity resource id/,
    );
  });

  it('stands a placeholder for what Azure assigns on creation, and still checks the rest', () => {
    const settings = appSettingsFor(parseDeployment(base), { ...found, appInsightsConnectionString: undefined });
    expect(settings.APPLICATIONINSIGHTS_CONNECTION_STRING).toBe(KNOWN_AFTER_CREATE);
  });

  it('checks the settings again with the vault URIs Azure gives', () => {
    const d = parseDeployment(base);
    expect(() => appSettingsFor(d, { ...found, vaultUris: new Map([['default', 'https://main-vault.vault.azure.net/']]) })).toThrow(
      new ConfigError("vaults.partner: the vault's URI is unknown"),
    );
    expect(() => appSettingsFor(d, { ...found, vaultUris: new Map([...found.vaultUris, ['default', 'http://main-vault']]) })).toThrow(
      new ConfigError('settings: KEY_VAULT_URI: must be an https URL, got "http://main-vault"'),
    );
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
