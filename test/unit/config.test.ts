import { loadAccessConfig, loadAccessPolicy, loadConfig, DEFAULT_CACHE_TTL_SECONDS, rotationTargetKey } from '../../shared/config';
import { ConfigError } from '../../shared/errors';

const VAULT = { KEY_VAULT_URI: 'https://contoso-vault2.vault.azure.net' };

describe('loadConfig', () => {
  it('applies the contract defaults when only the vault is set', () => {
    const config = loadConfig(VAULT);
    expect(config.vaults.get('default')).toMatchObject({
      alias: 'default',
      uri: 'https://contoso-vault2.vault.azure.net/',
      resourceId: undefined,
    });
    expect(config.policy.callers).toEqual([]);
    expect(config.auth).toBeUndefined();
    expect(config.cache).toEqual({ ttlSeconds: DEFAULT_CACHE_TTL_SECONDS, maxEntries: 1000, staleIfErrorSeconds: 3600 });
    expect(config.expiryWarningDays).toBe(30);
    expect(config.healthCheckSchedule).toBe('0 */15 * * * *');
    expect(config.storage).toEqual({ kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' });
    expect(config.appInsightsConnectionString).toBeUndefined();
    expect(config.sharedCache).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads aliases beside the default vault, as Business Central needs', () => {
    const config = loadConfig({
      ...VAULT,
      KEY_VAULT_ALIASES: 'bc=https://bc-vault.vault.azure.net/; partner=https://partner.vault.azure.net',
    });
    expect([...config.vaults.keys()]).toEqual(['default', 'bc', 'partner']);
    expect(config.vaults.get('partner')?.uri).toBe('https://partner.vault.azure.net/');
  });

  it('parses a full access policy and freezes it', () => {
    const policy = {
      callers: [
        {
          name: 'erp-integration',
          identities: [{ appId: '11111111-1111-1111-1111-111111111111' }, { apiKeySha256: 'a'.repeat(64) }],
          allow: ['erp-*', 'partner/sftp-password'],
          deny: ['erp-admin-*'],
        },
      ],
    };
    const config = loadConfig({ ...VAULT, ACCESS_POLICY: JSON.stringify(policy) });
    expect(config.policy.callers[0]).toEqual({ ...policy.callers[0], operator: false, roles: [], rateLimit: { requestsPerMinute: 600 } });
    expect(Object.isFrozen(config.policy.callers[0]?.allow)).toBe(true);
  });

  it.each([
    [{}, 'KEY_VAULT_URI: must be set'],
    [{ KEY_VAULT_URI: 'http://contoso.vault.azure.net/' }, 'KEY_VAULT_URI: must be an https URL'],
    [{ KEY_VAULT_URI: 'https://contoso.vault.azure.net/secrets/x' }, 'KEY_VAULT_URI: must be a vault URI'],
    [{ ...VAULT, KEY_VAULT_ALIASES: 'nope' }, 'KEY_VAULT_ALIASES: "nope" must be alias='],
    [{ ...VAULT, KEY_VAULT_ALIASES: 'default=https://x.vault.azure.net/' }, 'KEY_VAULT_ALIASES: alias "default" is used twice'],
    [{ ...VAULT, ACCESS_POLICY: '{callers:' }, 'ACCESS_POLICY: is not valid JSON'],
    [
      {
        ...VAULT,
        ACCESS_POLICY:
          '{"callers":[{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}]},{"name":"b","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}]},{"name":"c","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}],"allow":"erp-*"}]}',
      },
      'ACCESS_POLICY: callers[2].allow must be a list of strings',
    ],
    [
      { ...VAULT, ACCESS_POLICY: '{"callers":[{"name":"a","identities":[{"apiKeySha256":"abc"}]}]}' },
      'ACCESS_POLICY: callers[0].identities[0].apiKeySha256 must be the hex SHA-256 of the key (64 hex digits)',
    ],
    [
      {
        ...VAULT,
        ACCESS_POLICY:
          '{"callers":[{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}]},{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}]}]}',
      },
      'ACCESS_POLICY: callers[1].name "a" is used twice',
    ],
    [
      { ...VAULT, ACCESS_POLICY: '{"callers":[{"name":"a","identities":[{"user":"x"}]}]}' },
      'ACCESS_POLICY: callers[0].identities[0] must be {"appId": "<GUID>"} or {"apiKeySha256": "<64 hex digits>"}',
    ],
    [{ ...VAULT, AUTH_ISSUER: 'https://login.microsoftonline.com/t/v2.0' }, 'AUTH_AUDIENCE: must be set when AUTH_ISSUER is set'],
    [
      { ...VAULT, AUTH_ISSUER: 'http://login.example/t/v2.0', AUTH_AUDIENCE: 'api://x' },
      'AUTH_ISSUER: must be an https URL (http only to localhost for local development), got "http://login.example/t/v2.0"',
    ],
    [
      { ...VAULT, NOTIFY_EVENTGRID_ENDPOINT: 'http://10.0.0.4/api/events' },
      'NOTIFY_EVENTGRID_ENDPOINT: must be an https URL (http only to localhost for local development)',
    ],
    [
      {
        ...VAULT,
        CONSUMERS: '[{"name":"erp","events":["SecretExpired"],"webhook":"http://erp.example/hook","signingSecret":"erp-whsec"}]',
      },
      'CONSUMERS: [0].webhook must be an https URL (http only to localhost for local development), got "http://erp.example/hook"',
    ],
    [
      { ...VAULT, CONSUMERS: '[{"name":"erp","events":["SecretExpired"],"webhook":"ftp://erp.example/","signingSecret":"erp-whsec"}]' },
      'CONSUMERS: [0].webhook must be an https URL',
    ],
    [{ ...VAULT, SIGNING_KEY_VAULT: 'keys' }, 'SIGNING_KEY_VAULT: "keys" is not a configured vault alias (known: default)'],
    [
      {
        ...VAULT,
        ACCESS_POLICY:
          '{"callers":[{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}],"rateLimit":{"requestsPerMinute":0}}]}',
      },
      'ACCESS_POLICY: callers[0].rateLimit.requestsPerMinute must be at least 1',
    ],
    [
      {
        ...VAULT,
        ACCESS_POLICY:
          '{"callers":[{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}],"rateLimit":{"missesPerMinute":0}}]}',
      },
      'ACCESS_POLICY: callers[0].rateLimit.missesPerMinute must be at least 1',
    ],
    [
      {
        ...VAULT,
        ACCESS_POLICY:
          '{"callers":[{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}],"rateLimit":{"missesPerMinute":2.5}}]}',
      },
      'ACCESS_POLICY: callers[0].rateLimit.missesPerMinute must be a whole number',
    ],
    [
      {
        ...VAULT,
        ACCESS_POLICY:
          '{"callers":[{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}],"rateLimit":{"missesPerMinute":"60"}}]}',
      },
      'ACCESS_POLICY: callers[0].rateLimit.missesPerMinute must be a number',
    ],
    [
      {
        ...VAULT,
        ACCESS_POLICY:
          '{"callers":[{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}],"rateLimit":{"missesPerHour":60}}]}',
      },
      'ACCESS_POLICY: callers[0].rateLimit.missesPerHour',
    ],
    [
      {
        ...VAULT,
        ACCESS_POLICY: '{"callers":[{"name":"a","identities":[{"appId":"11111111-1111-1111-1111-111111111111"}],"roles":"Secrets.Read"}]}',
      },
      'ACCESS_POLICY: callers[0].roles must be a list of app role values',
    ],
    [{ ...VAULT, CACHE_TTL_SECONDS: 'five' }, 'CACHE_TTL_SECONDS: must be a whole number of at least 0, got "five"'],
    [{ ...VAULT, CACHE_MAX_ENTRIES: '0' }, 'CACHE_MAX_ENTRIES: must be a whole number of at least 1, got "0"'],
    [{ ...VAULT, HEALTH_CHECK_SCHEDULE: '*/5 * * * *' }, 'HEALTH_CHECK_SCHEDULE: must be an NCRONTAB expression with 6 fields'],
    [
      {
        ...VAULT,
        CONSUMERS:
          '[{"name":"erp","secrets":["erp-*"],"events":["Rotated"],"webhook":"https://erp.example/hook","signingSecret":"erp-whsec"}]',
      },
      'CONSUMERS: [0].events[0] must be one of SecretNewVersionCreated',
    ],
    [
      { ...VAULT, KEY_VAULT_RESOURCE_IDS: '/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/other' },
      'KEY_VAULT_RESOURCE_IDS: no configured vault is named "other"',
    ],
    [{ ...VAULT, VAULT_EXPECTATIONS: '{"bc":{"firewall":"on"}}' }, 'VAULT_EXPECTATIONS: "bc" is not a configured vault alias'],
    [
      { ...VAULT, VAULT_EXPECTATIONS: '{"default":{"firewall":"maybe"}}' },
      'VAULT_EXPECTATIONS: default.firewall must be "on", "off" or "any"',
    ],
    [
      {
        ...VAULT,
        VAULT_EXPECTATIONS: JSON.stringify({
          default: { readers: [{ name: 'CI', principalId: '0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff', permissions: ['secrets', 'storage'] }] },
        }),
      },
      'VAULT_EXPECTATIONS: default.readers[0].permissions[1] must be "secrets", "keys" or "certificates", got "storage"',
    ],
    [
      {
        ...VAULT,
        VAULT_EXPECTATIONS: JSON.stringify({
          default: { readers: [{ name: 'CI', principalId: '0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff', permissions: 'secrets' }] },
        }),
      },
      'VAULT_EXPECTATIONS: default.readers[0].permissions must be a list',
    ],
    [
      {
        ...VAULT,
        VAULT_EXPECTATIONS: JSON.stringify({
          default: { readers: [{ name: 'CI', principalId: '0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff', permissions: [] }] },
        }),
      },
      'VAULT_EXPECTATIONS: default.readers[0].permissions must not be empty',
    ],
    [
      { ...VAULT, VAULT_EXPECTATIONS: '{"default":{"location":"west-europe"}}' },
      'VAULT_EXPECTATIONS: default.location must be an Azure region name, e.g. "westeurope" or "West Europe"',
    ],
    [{ ...VAULT, VAULT_EXPECTATIONS: '{"default":{"region":"westeurope"}}' }, 'VAULT_EXPECTATIONS: default.region'],
    [{ ...VAULT, CACHE_SHARED: 'redis' }, 'CACHE_SHARED: must be "table" or "off", got "redis"'],
    [
      { ...VAULT, CACHE_SHARED: 'table' },
      'CACHE_SHARED_KEY_SECRET: must be set when CACHE_SHARED is "table", to the name of the Key Vault secret holding the data key',
    ],
    [
      { ...VAULT, CACHE_SHARED: 'table', CACHE_SHARED_KEY_SECRET: 'keys/cache_key' },
      'CACHE_SHARED_KEY_SECRET: must be the name of a secret in the default vault (1 to 127 letters, digits and dashes), got "keys/cache_key"',
    ],
    [
      { ...VAULT, CACHE_SHARED_KEY_SECRET: 'bad\nname' },
      'CACHE_SHARED_KEY_SECRET: must be the name of a secret in the default vault (1 to 127 letters, digits and dashes), got "bad\\nname"',
    ],
  ])('refuses %j with one line naming the setting', (env, message) => {
    let thrown: unknown;
    try {
      loadConfig(env);
    } catch (err: unknown) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as Error).message).toContain(message);
    expect((thrown as Error).message).not.toContain('\n');
  });

  /** The one line `loadConfig` throws for `env`. */
  const refusal = (env: Record<string, string>): string => {
    try {
      loadConfig(env);
    } catch (err: unknown) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it.each([
    ['the default vault as written', 'erp=https://contoso-vault2.vault.azure.net/', 'default', 'https://contoso-vault2.vault.azure.net/'],
    ['the default vault in other case', 'erp=HTTPS://Contoso-Vault2.VAULT.azure.net', 'default', 'https://contoso-vault2.vault.azure.net/'],
    [
      'the default vault with :443',
      'erp=https://contoso-vault2.vault.azure.net:443/',
      'default',
      'https://contoso-vault2.vault.azure.net/',
    ],
    [
      'the default vault with a trailing dot',
      'erp=https://contoso-vault2.vault.azure.net./',
      'default',
      'https://contoso-vault2.vault.azure.net/',
    ],
    ['another alias', 'bc=https://bc.vault.azure.net/; erp=https://BC.vault.azure.net:443', 'bc', 'https://bc.vault.azure.net/'],
  ])('refuses an alias that names %s: one vault, one alias', (_label, aliases, twin, uri) => {
    expect(refusal({ ...VAULT, KEY_VAULT_ALIASES: aliases })).toBe(`KEY_VAULT_ALIASES: "erp" names the same vault as "${twin}" (${uri})`);
  });

  it('takes another port of the same host as another vault', () => {
    const config = loadConfig({ ...VAULT, KEY_VAULT_ALIASES: 'erp=https://contoso-vault2.vault.azure.net:8443/' });
    expect(config.vaults.get('erp')?.uri).toBe('https://contoso-vault2.vault.azure.net:8443/');
  });

  const HTTPS_ONLY = 'must be an https URL (http only to localhost for local development), got';

  it.each([
    'http://127.1/hook',
    'http://127.0.0.2/hook',
    'http://127.255.255.254:8080/hook',
    'http://0x7f000001/hook',
    'http://2130706433/hook',
    'http://127.0.0.%31/hook',
    'http://erp.localhost/hook',
    'http://localhost./hook',
    'http://[0:0:0:0:0:0:0:1]/hook',
    'http://localhost@erp.example/hook',
    'http:127.0.0.1/hook',
  ])('refuses http to %s: only exactly localhost, 127.0.0.1 and [::1]', (url) => {
    const webhook = JSON.stringify([{ name: 'erp', events: ['SecretExpired'], webhook: url, signingSecret: 'erp-whsec' }]);
    expect(refusal({ ...VAULT, CONSUMERS: webhook })).toBe(`CONSUMERS: [0].webhook ${HTTPS_ONLY} "${url}"`);
    expect(refusal({ ...VAULT, AUTH_ISSUER: url, AUTH_AUDIENCE: 'api://x' })).toBe(`AUTH_ISSUER: ${HTTPS_ONLY} "${url}"`);
    expect(refusal({ ...VAULT, NOTIFY_EVENTGRID_ENDPOINT: url })).toBe(`NOTIFY_EVENTGRID_ENDPOINT: ${HTTPS_ONLY} "${url}"`);
    expect(refusal({ ...VAULT, AzureWebJobsStorage__tableServiceUri: url })).toBe(
      `AzureWebJobsStorage__tableServiceUri: ${HTTPS_ONLY} "${url}"`,
    );
  });

  it('reads app roles, rate limits and the signing-key vault', () => {
    const config = loadConfig({
      ...VAULT,
      KEY_VAULT_ALIASES: 'keys=https://broker-keys.vault.azure.net/',
      SIGNING_KEY_VAULT: 'keys',
      ACCESS_POLICY: JSON.stringify({
        callers: [
          {
            name: 'erp',
            identities: [{ appId: '11111111-1111-1111-1111-111111111111' }],
            roles: ['Secrets.Read'],
            rateLimit: { requestsPerMinute: 60, missesPerMinute: 30 },
          },
          { name: 'misses-only', identities: [{ appId: '22222222-2222-2222-2222-222222222222' }], rateLimit: { missesPerMinute: 5 } },
        ],
      }),
    });
    expect(config.signingKeyVault).toBe('keys');
    expect(config.policy.callers[0]).toMatchObject({ roles: ['Secrets.Read'], rateLimit: { requestsPerMinute: 60, missesPerMinute: 30 } });
    // The request rate keeps its default when only the miss budget is set.
    expect(config.policy.callers[1]?.rateLimit).toEqual({ requestsPerMinute: 600, missesPerMinute: 5 });
    expect(loadConfig(VAULT).signingKeyVault).toBe('default');
  });

  it.each([
    'http://localhost:7071/hook',
    'http://LOCALHOST/hook',
    'http://127.0.0.1:9000/x',
    'http://127.0.0.1',
    'http://[::1]:8080/',
    'https://erp.example/hook',
  ])('accepts %s as a webhook (https, or http to loopback)', (webhook) => {
    const consumers = [{ name: 'erp', events: ['SecretExpired'], webhook, signingSecret: 'erp-whsec' }];
    expect(loadConfig({ ...VAULT, CONSUMERS: JSON.stringify(consumers) }).consumers[0]?.webhook).toBe(webhook);
  });

  it.each([
    [{}, undefined],
    [{ CACHE_SHARED: 'off' }, undefined],
    [{ CACHE_SHARED: 'off', CACHE_SHARED_KEY_SECRET: 'broker-cache-key' }, undefined],
    [{ CACHE_SHARED: 'table', CACHE_SHARED_KEY_SECRET: 'broker-cache-key' }, { keySecret: 'broker-cache-key' }],
    [{ CACHE_SHARED: ' Table ', CACHE_SHARED_KEY_SECRET: ' broker-cache-key ' }, { keySecret: 'broker-cache-key' }],
  ])('reads the shared cache settings %j as %j', (env, expected) => {
    const config = loadConfig({ ...VAULT, ...env });
    expect(config.sharedCache).toEqual(expected);
    if (config.sharedCache) expect(Object.isFrozen(config.sharedCache)).toBe(true);
  });

  it('keeps AUTH_ISSUER as written, since it is compared with iss verbatim (v1 issuers end with /)', () => {
    const v1 = 'https://sts.windows.net/7c1f4e2a-93d5-4b86-a0e4-5d2c8b9f1a36/';
    expect(loadConfig({ ...VAULT, AUTH_ISSUER: v1, AUTH_AUDIENCE: 'api://broker' }).auth).toEqual({ issuer: v1, audience: 'api://broker' });
  });

  it('matches a bare resource id to the vault of the same name', () => {
    const id = '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso-vault2';
    const config = loadConfig({
      ...VAULT,
      KEY_VAULT_RESOURCE_IDS: id,
      VAULT_EXPECTATIONS:
        '{"default":{"firewall":"off","readers":[{"name":"Customer Insights","principalId":"0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff"}]}}',
    });
    expect(config.vaults.get('default')?.resourceId).toBe(id);
    expect(config.vaults.get('default')?.expectations.firewall).toBe('off');
  });

  it("reads an expected location and readers' permissions, defaulting them to secrets", () => {
    const config = loadConfig({
      ...VAULT,
      VAULT_EXPECTATIONS: JSON.stringify({
        default: {
          firewall: 'off',
          location: 'West Europe',
          readers: [
            {
              name: 'Customer Insights',
              principalId: '0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff',
              permissions: ['secrets', 'keys', 'certificates', 'keys'],
            },
            { name: 'ERP', principalId: '11111111-1111-1111-1111-111111111111' },
          ],
        },
      }),
    });
    const expectations = config.vaults.get('default')?.expectations;
    expect(expectations).toEqual({
      firewall: 'off',
      location: 'West Europe',
      readers: [
        {
          name: 'Customer Insights',
          principalId: '0bfc4568-a4ba-4c58-bd3e-5d3e76bd7fff',
          permissions: ['secrets', 'keys', 'certificates'],
        },
        { name: 'ERP', principalId: '11111111-1111-1111-1111-111111111111', permissions: ['secrets'] },
      ],
    });
    expect(Object.isFrozen(expectations?.readers[1]?.permissions)).toBe(true);
    expect(loadConfig(VAULT).vaults.get('default')?.expectations).toEqual({ firewall: 'any', readers: [] });
  });

  describe('APPLICATIONINSIGHTS_AUTHENTICATION_STRING', () => {
    const CS = { ...VAULT, APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=00000000-0000-0000-0000-000000000000' };
    it('reads the system-assigned form, the user-assigned form, and nothing when unset', () => {
      expect(loadConfig({ ...CS, APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD' }).appInsightsAuthentication).toEqual({
        clientId: undefined,
      });
      expect(
        loadConfig({ ...CS, APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=0d4c2f8e-6a1b-4f3d-8e5c-7b9a1c2d3e4f;Authorization=AAD' })
          .appInsightsAuthentication,
      ).toEqual({ clientId: '0d4c2f8e-6a1b-4f3d-8e5c-7b9a1c2d3e4f' });
      expect(loadConfig(CS).appInsightsAuthentication).toBeUndefined();
    });

    it.each([
      ['Authorization=Key', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING: must contain Authorization=AAD'],
      ['ClientId=app;Authorization=AAD', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING: ClientId must be a client id (a GUID)'],
      [
        'Secret=x;Authorization=AAD',
        'APPLICATIONINSIGHTS_AUTHENTICATION_STRING: "Secret" is not a field (expected Authorization=AAD, optionally ClientId=<client id>;)',
      ],
    ])('refuses %s with one line naming the setting', (value, message) => {
      expect(() => loadConfig({ ...CS, APPLICATIONINSIGHTS_AUTHENTICATION_STRING: value })).toThrow(new ConfigError(message));
    });

    it('refuses the setting without a connection string to send to', () => {
      expect(() => loadConfig({ ...VAULT, APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD' })).toThrow(
        'APPLICATIONINSIGHTS_AUTHENTICATION_STRING: needs APPLICATIONINSIGHTS_CONNECTION_STRING',
      );
    });
  });
});

describe('adoption and rotation settings', () => {
  const ID = '6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f';
  const APP = '5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e';
  const APP2 = '6c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f';

  it('warns after 24 hours and leaves rotation off (the broker never writes to a vault) by default', () => {
    const config = loadConfig(VAULT);
    expect([config.adoptionWarningHours, config.rotation]).toEqual([24, undefined]);
  });

  it('turns rotation on with the identity, with the window and deadline defaults or decimals', () => {
    expect(loadConfig({ ...VAULT, ROTATION_IDENTITY_CLIENT_ID: ID }).rotation).toEqual({
      identityClientId: ID,
      adoptionWindowHours: 72,
      retireAfterHours: 72,
      targets: new Map(),
    });
    const config = loadConfig({
      ...VAULT,
      ROTATION_IDENTITY_CLIENT_ID: ID,
      ADOPTION_WARNING_HOURS: '1.5',
      ROTATION_ADOPTION_WINDOW_HOURS: '0.25',
      ROTATION_RETIRE_AFTER_HOURS: '48',
    });
    expect([config.adoptionWarningHours, config.rotation]).toEqual([
      1.5,
      { identityClientId: ID, adoptionWindowHours: 0.25, retireAfterHours: 48, targets: new Map() },
    ]);
  });

  it('reads ROTATION_TARGETS: a name in the default vault or alias/name, lower case, to an application object id', () => {
    const config = loadConfig({
      ...VAULT,
      KEY_VAULT_ALIASES: 'partner=https://partner-kv.vault.azure.net/',
      ROTATION_IDENTITY_CLIENT_ID: ID,
      ROTATION_TARGETS: JSON.stringify({ 'ERP-Client-Secret': APP.toUpperCase(), 'partner/sftp-app': APP2 }),
    });
    expect([...(config.rotation?.targets ?? [])]).toEqual([
      ['default/erp-client-secret', APP],
      ['partner/sftp-app', APP2],
    ]);
    expect(rotationTargetKey('default', 'Erp-CLIENT-secret')).toBe('default/erp-client-secret');
  });

  it.each([
    [
      { ROTATION_IDENTITY_CLIENT_ID: 'rotator' },
      'ROTATION_IDENTITY_CLIENT_ID: must be the client id (a GUID) of the user-assigned identity that rotates, got "rotator"',
    ],
    [
      { ADOPTION_WARNING_HOURS: '-1' },
      'ADOPTION_WARNING_HOURS: must be a number of hours (0 or more, decimals allowed, e.g. 1.5), got "-1"',
    ],
    // Checked while rotation is off too: a typo does not wait for the day it is turned on.
    [
      { ROTATION_RETIRE_AFTER_HOURS: '3d' },
      'ROTATION_RETIRE_AFTER_HOURS: must be a number of hours (0 or more, decimals allowed, e.g. 1.5), got "3d"',
    ],
    [
      { ROTATION_TARGETS: '["erp"]' },
      'ROTATION_TARGETS: must be a JSON object of "<secret>" or "<alias>/<secret>" to an application object id',
    ],
    [{ ROTATION_TARGETS: '{erp' }, 'ROTATION_TARGETS: is not valid JSON'],
    [{ ROTATION_TARGETS: JSON.stringify({ erp: 'erp-app' }) }, 'ROTATION_TARGETS: "erp" must map to the application\'s object id (a GUID)'],
    [
      { ROTATION_TARGETS: JSON.stringify({ erp_secret: APP }) },
      'ROTATION_TARGETS: "erp_secret" must be <secret> or <alias>/<secret> with a Key Vault secret name',
    ],
    [
      { ROTATION_TARGETS: JSON.stringify({ 'partner/erp': APP }) },
      'ROTATION_TARGETS: "partner/erp" names vault "partner", which is not configured (known: default)',
    ],
    [
      { ROTATION_TARGETS: JSON.stringify({ erp: APP, 'default/ERP': APP2 }) },
      'ROTATION_TARGETS: "default/ERP" names a secret twice (names are case-insensitive)',
    ],
  ])('refuses %j with one line naming the setting', (env, message) => {
    expect(() => loadConfig({ ...VAULT, ...env })).toThrow(new ConfigError(message));
  });
});

describe('loadAccessConfig (policy explain: what an access decision reads, offline)', () => {
  const POLICY = JSON.stringify({ callers: [{ name: 'erp', identities: [{ apiKeySha256: 'a'.repeat(64) }], allow: ['erp-*'] }] });

  it('needs no KEY_VAULT_URI, where loadConfig does, and reads the policy and reserved names alike', () => {
    const env = {
      ACCESS_POLICY: POLICY,
      CONSUMERS: JSON.stringify([
        { name: 'erp', events: ['SecretExpired'], webhook: 'https://erp.example.com/h', signingSecret: 'whsec-erp' },
      ]),
      CACHE_SHARED: 'table',
      CACHE_SHARED_KEY_SECRET: 'cache-key',
    };
    expect(() => loadConfig(env)).toThrow(/^KEY_VAULT_URI: must be set/);
    const access = loadAccessConfig(env);
    expect(access.policy).toEqual(loadConfig({ ...VAULT, ...env }).policy);
    expect(access.consumers.map((c) => c.signingSecret)).toEqual(['whsec-erp']);
    expect(access.sharedCache).toEqual({ keySecret: 'cache-key' });
    expect(access.signingKeyVault).toBe('default');
    expect(access.vaultAliases).toEqual(['default']);
    expect(Object.isFrozen(access)).toBe(true);
  });

  it('knows default and the aliases of KEY_VAULT_ALIASES, with or without KEY_VAULT_URI', () => {
    const aliases = { KEY_VAULT_ALIASES: 'partner=https://partner.vault.azure.net/' };
    expect(loadAccessConfig(aliases).vaultAliases).toEqual(['default', 'partner']);
    expect(loadAccessConfig({ ...VAULT, ...aliases, SIGNING_KEY_VAULT: 'partner' })).toMatchObject({
      vaultAliases: ['default', 'partner'],
      signingKeyVault: 'partner',
    });
  });

  it.each([
    [{ ACCESS_POLICY: '{callers:' }, 'ACCESS_POLICY: is not valid JSON'],
    [{ KEY_VAULT_URI: 'http://contoso.vault.azure.net/' }, 'KEY_VAULT_URI: must be an https URL, got "http://contoso.vault.azure.net/"'],
    [{ KEY_VAULT_ALIASES: 'partner' }, /^KEY_VAULT_ALIASES: "partner" must be alias=/],
    [{ SIGNING_KEY_VAULT: 'keys' }, 'SIGNING_KEY_VAULT: "keys" is not a configured vault alias (known: default)'],
    [{ CACHE_SHARED: 'table' }, /^CACHE_SHARED_KEY_SECRET: must be set/],
    [{ CONSUMERS: '[{}]' }, /^CONSUMERS: \[0\]\.name /],
  ])('still refuses a bad setting it reads: %j', (env, message) => {
    expect(() => loadAccessConfig(env)).toThrow(ConfigError);
    expect(() => loadAccessConfig(env)).toThrow(message);
  });

  it('leaves alone the settings it does not read', () => {
    expect(() => loadAccessConfig({ ACCESS_POLICY: POLICY, CACHE_TTL_SECONDS: 'soon', AUTH_ISSUER: 'http://example.com' })).not.toThrow();
  });
});

describe('loadAccessPolicy (keys new: the policy alone)', () => {
  it('reads ACCESS_POLICY as loadConfig does, no callers when unset, and nothing else', () => {
    const policy = JSON.stringify({ callers: [{ name: 'erp', identities: [{ apiKeySha256: 'a'.repeat(64) }] }] });
    expect(loadAccessPolicy({ ACCESS_POLICY: policy, KEY_VAULT_ALIASES: 'bad' })).toEqual(
      loadConfig({ ...VAULT, ACCESS_POLICY: policy }).policy,
    );
    expect(loadAccessPolicy({})).toEqual({ callers: [] });
    expect(() => loadAccessPolicy({ ACCESS_POLICY: '{"callers":[{"name":"erp"}]}' })).toThrow(/^ACCESS_POLICY: callers\[0\]\.identities /);
  });
});
