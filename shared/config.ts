import * as v from 'valibot';
import { ConfigError } from './errors';
import { parseSchedule } from './health/ncrontab';

/** Seconds a resolved latest version is served from memory before the vault is asked again. */
export const DEFAULT_CACHE_TTL_SECONDS = 300;
/** Entries the in-memory cache holds before it evicts the least recently used. */
export const DEFAULT_CACHE_MAX_ENTRIES = 1000;
/** Seconds past its TTL a cached value may still be served while the vault fails or throttles. */
export const DEFAULT_CACHE_STALE_IF_ERROR_SECONDS = 3600;
/** Days before `exp` that the health check starts to warn. */
export const DEFAULT_EXPIRY_WARNING_DAYS = 30;
/** Hours an old version may still be read after a new one appeared before health warns (`ADOPTION_WARNING_HOURS`). */
export const DEFAULT_ADOPTION_WARNING_HOURS = 24;
/** Callers that read the old version within these hours must read the new one before retirement (`ROTATION_ADOPTION_WINDOW_HOURS`). */
export const DEFAULT_ROTATION_ADOPTION_WINDOW_HOURS = 72;
/** Retirement happens at the latest this long after the new version (`ROTATION_RETIRE_AFTER_HOURS`). */
export const DEFAULT_ROTATION_RETIRE_AFTER_HOURS = 72;
/** NCRONTAB (6 fields): every 15 minutes. */
export const DEFAULT_HEALTH_CHECK_SCHEDULE = '0 */15 * * * *';
/** Storage used when `AzureWebJobsStorage` is not set (Azurite). */
export const DEFAULT_STORAGE = 'UseDevelopmentStorage=true';
/** The public cloud's storage suffix: `AzureWebJobsStorage__accountName` means `https://<account>.table.core.windows.net`. */
export const STORAGE_ENDPOINT_SUFFIX = 'core.windows.net';
/** The alias of the vault named by `KEY_VAULT_URI`. */
export const DEFAULT_VAULT_ALIAS = 'default';
/** Requests (batch items count one each) a caller may make per minute on one instance, unless its entry says otherwise. */
export const DEFAULT_CALLER_REQUESTS_PER_MINUTE = 600;
/**
 * Vault misses (reads the cache could not answer) a caller may cause per minute on one instance,
 * unless its entry says otherwise. A legitimate integration misses after a cold start (its few
 * secrets, or a whole batch: `MAX_BATCH_SECRETS`, 100 items, must pass at once) and once per
 * `CACHE_TTL_SECONDS` per secret after that; cache hits never spend it.
 */
export const DEFAULT_CALLER_MISSES_PER_MINUTE = 100;
/** The values `CACHE_SHARED` accepts; unset is `off`. */
export const CACHE_SHARED_MODES = ['table', 'off'] as const;

/** Key Vault's rule for secret names. */
const SECRET_NAME = /^[0-9A-Za-z-]{1,127}$/;
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const VAULT_RESOURCE_ID = /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.KeyVault\/vaults\/([A-Za-z0-9-]{3,24})$/i;

/** One vault the broker reads from. */
export interface VaultSettings {
  /** `default` for `KEY_VAULT_URI`, else the alias from `KEY_VAULT_ALIASES`. */
  readonly alias: string;
  /** Normalised to end with `/`. */
  readonly uri: string;
  /** ARM id from `KEY_VAULT_RESOURCE_IDS`, when given. */
  readonly resourceId: string | undefined;
  readonly expectations: VaultExpectations;
}

/** What a reader of `VAULT_EXPECTATIONS` may need to read: the three kinds of Key Vault object. */
export const READER_PERMISSIONS = ['secrets', 'keys', 'certificates'] as const;
export type ReaderPermission = (typeof READER_PERMISSIONS)[number];
/** What a reader needs when its entry names no `permissions`. */
export const DEFAULT_READER_PERMISSIONS: readonly ReaderPermission[] = ['secrets'];

/** What `VAULT_EXPECTATIONS` declares of one vault; the health check compares the vault with it. */
export interface VaultExpectations {
  readonly firewall: 'on' | 'off' | 'any';
  /** The Azure region the vault must be in (e.g. `westeurope`), as written; undefined: not checked. */
  readonly location?: string | undefined;
  readonly readers: readonly {
    readonly name: string;
    readonly principalId: string;
    /** The kinds it must be able to read; default {@link DEFAULT_READER_PERMISSIONS}. */
    readonly permissions: readonly ReaderPermission[];
  }[];
}

const identitySchema = v.union(
  [
    v.strictObject({ appId: v.pipe(v.string('must be a string'), v.regex(UUID, 'must be a GUID')) }),
    v.strictObject({
      apiKeySha256: v.pipe(
        v.string('must be a string'),
        v.regex(/^[0-9a-fA-F]{64}$/, 'must be the hex SHA-256 of the key (64 hex digits)'),
      ),
    }),
  ],
  'must be {"appId": "<GUID>"} or {"apiKeySha256": "<64 hex digits>"}',
);

const patternList = v.array(
  v.pipe(v.string('must be a list of strings'), v.minLength(1, 'must not be empty')),
  'must be a list of strings',
);

/** A per-minute count in a caller's `rateLimit`. */
const perMinute = v.pipe(
  v.number('must be a number'),
  v.integer('must be a whole number'),
  v.minValue(1, 'must be at least 1'),
  v.maxValue(1_000_000, 'must be at most 1000000'),
);

const callerSchema = v.strictObject({
  name: v.pipe(v.string('must be a string'), v.minLength(1, 'must not be empty')),
  identities: v.pipe(v.array(identitySchema, 'must be a list'), v.minLength(1, 'must name at least one identity')),
  allow: v.optional(patternList, () => []),
  deny: v.optional(patternList, () => []),
  operator: v.optional(v.boolean('must be true or false'), false),
  /** App roles of which a bearer token must carry at least one (`roles` claim); none: no role needed. */
  roles: v.optional(
    v.array(
      v.pipe(v.string('must be a list of app role values'), v.regex(/^[^\s]{1,120}$/, 'must be app role values without spaces')),
      'must be a list of app role values',
    ),
    () => [],
  ),
  rateLimit: v.optional(
    v.strictObject({
      requestsPerMinute: v.optional(perMinute, DEFAULT_CALLER_REQUESTS_PER_MINUTE),
      /** Vault misses per minute; unset: {@link DEFAULT_CALLER_MISSES_PER_MINUTE}, applied by the access policy. */
      missesPerMinute: v.optional(perMinute),
    }),
    () => ({ requestsPerMinute: DEFAULT_CALLER_REQUESTS_PER_MINUTE }),
  ),
});

const policySchema = v.strictObject({
  callers: v.pipe(
    v.array(callerSchema, 'must be a list'),
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const seen = new Set<string>();
      dataset.value.forEach((caller, i) => {
        if (seen.has(caller.name)) {
          addIssue({
            message: `"${caller.name}" is used twice`,
            path: [
              { type: 'array', origin: 'value', input: dataset.value, key: i, value: caller },
              { type: 'object', origin: 'value', input: caller, key: 'name', value: caller.name },
            ],
          });
        }
        seen.add(caller.name);
      });
    }),
  ),
});

/** The parsed `ACCESS_POLICY`. */
export type AccessPolicySettings = v.InferOutput<typeof policySchema>;
export type CallerSettings = AccessPolicySettings['callers'][number];

export const CONSUMER_EVENTS = [
  'SecretNewVersionCreated',
  'SecretNearExpiry',
  'SecretExpired',
  'HealthCheckFailed',
  'HealthCheckRecovered',
] as const;

const consumersSchema = v.array(
  v.strictObject({
    name: v.pipe(v.string('must be a string'), v.minLength(1, 'must not be empty')),
    secrets: v.optional(patternList, () => []),
    events: v.array(v.picklist(CONSUMER_EVENTS, `must be one of ${CONSUMER_EVENTS.join(', ')}`), 'must be a list'),
    webhook: v.pipe(
      v.string('must be a string'),
      v.check(
        (url) => remoteUrlProblem(url) === undefined,
        (issue) => remoteUrlProblem(String(issue.input)) ?? 'must be a URL',
      ),
    ),
    signingSecret: v.pipe(v.string('must be a string'), v.regex(/^[0-9A-Za-z-]{1,127}$/, 'must be a Key Vault secret name')),
  }),
  'must be a list',
);

/** The parsed `CONSUMERS`. */
export type ConsumerSettings = v.InferOutput<typeof consumersSchema>[number];

const expectationsSchema = v.record(
  v.string(),
  v.strictObject({
    firewall: v.optional(v.picklist(['on', 'off', 'any'], 'must be "on", "off" or "any"'), 'any'),
    location: v.optional(
      v.pipe(
        v.string('must be a string'),
        v.trim(),
        v.regex(/^[A-Za-z][A-Za-z0-9 ]{1,49}$/, 'must be an Azure region name, e.g. "westeurope" or "West Europe"'),
      ),
    ),
    readers: v.optional(
      v.array(
        v.strictObject({
          name: v.pipe(v.string('must be a string'), v.minLength(1, 'must not be empty')),
          principalId: v.pipe(v.string('must be a string'), v.regex(UUID, 'must be a GUID')),
          permissions: v.optional(
            v.pipe(
              v.array(
                v.picklist(
                  READER_PERMISSIONS,
                  (issue) => `must be "secrets", "keys" or "certificates", got ${JSON.stringify(issue.input) ?? String(issue.input)}`,
                ),
                'must be a list',
              ),
              v.minLength(1, 'must not be empty'),
              v.transform((kinds) => [...new Set(kinds)]),
            ),
            () => [...DEFAULT_READER_PERMISSIONS],
          ),
        }),
        'must be a list',
      ),
      () => [],
    ),
  }),
  'must be an object keyed by vault alias',
);

/** Everything the function set reads from its settings, validated once. */
export interface AppConfig {
  /** Every configured vault by alias; `default` is `KEY_VAULT_URI`. */
  readonly vaults: ReadonlyMap<string, VaultSettings>;
  readonly policy: AccessPolicySettings;
  readonly auth: { readonly issuer: string; readonly audience: string } | undefined;
  readonly consumers: readonly ConsumerSettings[];
  readonly cache: {
    readonly ttlSeconds: number;
    readonly maxEntries: number;
    readonly staleIfErrorSeconds: number;
  };
  /**
   * The shared, encrypted second-level cache (`CACHE_SHARED=table`): `keySecret` names the secret
   * in the default vault holding its data key (`CACHE_SHARED_KEY_SECRET`). Undefined when off.
   */
  readonly sharedCache: { readonly keySecret: string } | undefined;
  readonly expiryWarningDays: number;
  readonly healthCheckSchedule: string;
  readonly notifyEventGridEndpoint: string | undefined;
  /** The vault alias that holds consumers' signing keys (`SIGNING_KEY_VAULT`). */
  readonly signingKeyVault: string;
  /** Where the broker's tables live (`AzureWebJobsStorage` and its identity-based forms). */
  readonly storage: StorageSettings;
  readonly appInsightsConnectionString: string | undefined;
  /**
   * `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`: telemetry is sent with a managed identity's Entra
   * token (the component has local authentication off); `clientId` names a user-assigned identity,
   * undefined the system-assigned one. Undefined: the connection string alone.
   */
  readonly appInsightsAuthentication: { readonly clientId: string | undefined } | undefined;
  /** `ADOPTION_WARNING_HOURS`: health warns `StaleVersionInUse` when an old version is still read this long after a new one. */
  readonly adoptionWarningHours: number;
  /**
   * Rotation of Entra application client secrets, on when `ROTATION_IDENTITY_CLIENT_ID` names the
   * user-assigned identity that rotates (Key Vault Secrets Officer, Graph `Application.ReadWrite.OwnedBy`).
   * Undefined: rotation is off and the broker never writes to a vault.
   */
  readonly rotation: RotationSettings | undefined;
  /** The App Service instance (`WEBSITE_INSTANCE_ID`), when running in Azure. */
  readonly instanceId: string | undefined;
  /** What the platform tells the app about where it runs (App Service variables; all undefined locally). */
  readonly platform: {
    /** `WEBSITE_SITE_NAME`: the app's name; set in Azure on every plan (the host then records requests itself). */
    readonly siteName: string | undefined;
    /** `REGION_NAME`: the Azure region the instance runs in. */
    readonly regionName: string | undefined;
    /** `OTEL_SERVICE_NAME`: the telemetry role name outside Azure. */
    readonly serviceName: string | undefined;
  };
}

/** How rotations run (`ROTATION_*` settings); see {@link AppConfig.rotation}. */
export interface RotationSettings {
  /** `ROTATION_IDENTITY_CLIENT_ID`: client id of the user-assigned identity that writes to vaults and calls Graph. */
  readonly identityClientId: string;
  /** `ROTATION_ADOPTION_WINDOW_HOURS`: callers that read the old version within this window must move before retirement. */
  readonly adoptionWindowHours: number;
  /** `ROTATION_RETIRE_AFTER_HOURS`: retire at the latest this long after the new version (never later than a day before the old one expires). */
  readonly retireAfterHours: number;
  /**
   * `ROTATION_TARGETS`: the secrets that may rotate, each with the one application (object id, lower
   * case) whose client secret it may hold; keyed by {@link rotationTargetKey}. Empty: no secret
   * rotates (deny by default; the secret's tags alone never choose an application).
   */
  readonly targets: ReadonlyMap<string, string>;
}

/** The key of a secret in {@link RotationSettings.targets}: `alias/name`, lower case (Key Vault names are case-insensitive). */
export function rotationTargetKey(vault: string, secret: string): string {
  return `${vault}/${secret.toLowerCase()}`;
}

/**
 * The storage account of `AzureWebJobsStorage`: a connection string (account key, SAS,
 * `UseDevelopmentStorage=true`), or the identity-based form the Functions host accepts, reached
 * with a Microsoft Entra token (`DefaultAzureCredential`; a user-assigned managed identity when
 * `clientId` or `resourceId` names one).
 */
export type StorageSettings =
  | { readonly kind: 'connectionString'; readonly connectionString: string }
  | {
      readonly kind: 'identity';
      /** `https://<account>.table.core.windows.net`, or `AzureWebJobsStorage__tableServiceUri` without a trailing `/`. */
      readonly tableServiceUri: string;
      /** `AzureWebJobsStorage__clientId`: the user-assigned managed identity to use. */
      readonly clientId: string | undefined;
      /** `AzureWebJobsStorage__managedIdentityResourceId`: the user-assigned managed identity to use. */
      readonly resourceId: string | undefined;
    };

type Env = Record<string, string | undefined>;

/**
 * Reads and validates every setting of CONTRACT.md.
 * @throws ConfigError with one line naming the setting and what is wrong with it.
 */
export function loadConfig(env: Env = process.env): AppConfig {
  const vaults = parseVaults(env);
  const resourceIds = parseResourceIds(env.KEY_VAULT_RESOURCE_IDS, vaults);
  const expectations = parseJson('VAULT_EXPECTATIONS', env.VAULT_EXPECTATIONS, expectationsSchema, {});
  for (const alias of Object.keys(expectations)) {
    if (!vaults.has(alias)) {
      throw new ConfigError(`VAULT_EXPECTATIONS: "${alias}" is not a configured vault alias (known: ${[...vaults.keys()].join(', ')})`);
    }
  }
  const vaultMap = new Map<string, VaultSettings>();
  for (const [alias, uri] of vaults) {
    vaultMap.set(
      alias,
      Object.freeze({
        alias,
        uri,
        resourceId: resourceIds.get(alias),
        expectations: Object.freeze(expectations[alias] ?? { firewall: 'any' as const, readers: [] }),
      }),
    );
  }

  const issuer = nonEmpty(env.AUTH_ISSUER);
  const audience = nonEmpty(env.AUTH_AUDIENCE);
  if (issuer && !audience) throw new ConfigError('AUTH_AUDIENCE: must be set when AUTH_ISSUER is set');
  if (audience && !issuer) throw new ConfigError('AUTH_ISSUER: must be set when AUTH_AUDIENCE is set');
  if (issuer) checkRemoteUrl('AUTH_ISSUER', issuer);

  const schedule = healthCheckSchedule(env);
  try {
    parseSchedule(schedule);
  } catch (err: unknown) {
    throw new ConfigError(
      `HEALTH_CHECK_SCHEDULE: must be an NCRONTAB expression with 6 fields (second minute hour day month weekday) or hh:mm:ss; ${err instanceof Error ? err.message : 'invalid'}`,
    );
  }
  const notify = nonEmpty(env.NOTIFY_EVENTGRID_ENDPOINT);
  if (notify) checkRemoteUrl('NOTIFY_EVENTGRID_ENDPOINT', notify);
  const signingKeyVault = nonEmpty(env.SIGNING_KEY_VAULT) ?? DEFAULT_VAULT_ALIAS;
  if (!vaultMap.has(signingKeyVault)) {
    throw new ConfigError(
      `SIGNING_KEY_VAULT: "${signingKeyVault}" is not a configured vault alias (known: ${[...vaultMap.keys()].join(', ')})`,
    );
  }

  return Object.freeze({
    vaults: vaultMap,
    policy: loadAccessPolicy(env),
    // Kept as written: it is compared with `iss` verbatim (v1 issuers end with `/`, v2 ones do not).
    auth: issuer && audience ? Object.freeze({ issuer, audience }) : undefined,
    consumers: parseJson('CONSUMERS', env.CONSUMERS, consumersSchema, []),
    cache: Object.freeze({
      ttlSeconds: intSetting(env, 'CACHE_TTL_SECONDS', DEFAULT_CACHE_TTL_SECONDS, 0),
      maxEntries: intSetting(env, 'CACHE_MAX_ENTRIES', DEFAULT_CACHE_MAX_ENTRIES, 1),
      staleIfErrorSeconds: intSetting(env, 'CACHE_STALE_IF_ERROR_SECONDS', DEFAULT_CACHE_STALE_IF_ERROR_SECONDS, 0),
    }),
    sharedCache: parseSharedCache(env),
    expiryWarningDays: intSetting(env, 'EXPIRY_WARNING_DAYS', DEFAULT_EXPIRY_WARNING_DAYS, 0),
    healthCheckSchedule: schedule,
    notifyEventGridEndpoint: notify,
    signingKeyVault,
    storage: parseStorage(env),
    appInsightsConnectionString: nonEmpty(env.APPLICATIONINSIGHTS_CONNECTION_STRING),
    appInsightsAuthentication: parseAppInsightsAuthentication(env),
    adoptionWarningHours: hoursSetting(env, 'ADOPTION_WARNING_HOURS', DEFAULT_ADOPTION_WARNING_HOURS),
    rotation: parseRotation(env, vaultMap),
    instanceId: nonEmpty(env.WEBSITE_INSTANCE_ID),
    platform: Object.freeze({
      siteName: nonEmpty(env.WEBSITE_SITE_NAME),
      regionName: nonEmpty(env.REGION_NAME),
      serviceName: nonEmpty(env.OTEL_SERVICE_NAME),
    }),
  });
}

/**
 * What deciding a caller's access reads, and nothing else: `ACCESS_POLICY`, the names refused to
 * every caller (`CONSUMERS` signing secrets in `SIGNING_KEY_VAULT`, `CACHE_SHARED_KEY_SECRET`) and
 * the vault aliases. For `policy explain`, which answers offline: no vault URI is needed.
 */
export interface AccessConfig extends Pick<AppConfig, 'policy' | 'consumers' | 'signingKeyVault' | 'sharedCache'> {
  /** `default` (whether or not `KEY_VAULT_URI` is set) and the aliases of `KEY_VAULT_ALIASES`. */
  readonly vaultAliases: readonly string[];
}

/**
 * Reads and validates the settings of {@link AccessConfig} as {@link loadConfig} does, without
 * requiring `KEY_VAULT_URI` (when set, it is still checked).
 * @throws ConfigError with one line naming the setting and what is wrong with it.
 */
export function loadAccessConfig(env: Env = process.env): AccessConfig {
  const vaultAliases = [...new Set([DEFAULT_VAULT_ALIAS, ...parseVaults(env, { uriRequired: false }).keys()])];
  const signingKeyVault = nonEmpty(env.SIGNING_KEY_VAULT) ?? DEFAULT_VAULT_ALIAS;
  if (!vaultAliases.includes(signingKeyVault)) {
    throw new ConfigError(`SIGNING_KEY_VAULT: "${signingKeyVault}" is not a configured vault alias (known: ${vaultAliases.join(', ')})`);
  }
  return Object.freeze({
    policy: loadAccessPolicy(env),
    consumers: parseJson('CONSUMERS', env.CONSUMERS, consumersSchema, []),
    signingKeyVault,
    sharedCache: parseSharedCache(env),
    vaultAliases: Object.freeze(vaultAliases),
  });
}

/**
 * `ACCESS_POLICY` alone, validated as {@link loadConfig} does; unset or empty: no callers.
 * @throws ConfigError with one line naming what is wrong with it.
 */
export function loadAccessPolicy(env: Env = process.env): AccessPolicySettings {
  return parseJson('ACCESS_POLICY', env.ACCESS_POLICY, policySchema, { callers: [] });
}

/**
 * `HEALTH_CHECK_SCHEDULE` as written, or the default: the timer's schedule, read once at
 * registration (as the host reads a binding) and validated by {@link loadConfig}.
 */
export function healthCheckSchedule(env: Env = process.env): string {
  return nonEmpty(env.HEALTH_CHECK_SCHEDULE) ?? DEFAULT_HEALTH_CHECK_SCHEDULE;
}

const AI_AUTHENTICATION = 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING';

/**
 * `Authorization=AAD` (the system-assigned identity) or `ClientId=<client id>;Authorization=AAD`
 * (a user-assigned one), as Learn documents the setting for Functions ("Enable Microsoft Entra
 * authentication" in the Application Insights configuration of Azure Functions).
 */
function parseAppInsightsAuthentication(env: Env): AppConfig['appInsightsAuthentication'] {
  const raw = nonEmpty(env[AI_AUTHENTICATION]);
  if (!raw) return undefined;
  const fields = new Map<string, string>();
  for (const part of raw.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part.trim() : part.slice(0, eq).trim();
    if (eq < 0 || !['authorization', 'clientid'].includes(key.toLowerCase())) {
      throw new ConfigError(`${AI_AUTHENTICATION}: "${key}" is not a field (expected Authorization=AAD, optionally ClientId=<client id>;)`);
    }
    fields.set(key.toLowerCase(), part.slice(eq + 1).trim());
  }
  if (fields.get('authorization')?.toUpperCase() !== 'AAD') throw new ConfigError(`${AI_AUTHENTICATION}: must contain Authorization=AAD`);
  const clientId = fields.get('clientid');
  if (clientId !== undefined && !UUID.test(clientId)) throw new ConfigError(`${AI_AUTHENTICATION}: ClientId must be a client id (a GUID)`);
  if (!nonEmpty(env.APPLICATIONINSIGHTS_CONNECTION_STRING)) {
    throw new ConfigError(`${AI_AUTHENTICATION}: needs APPLICATIONINSIGHTS_CONNECTION_STRING (which resource to send to)`);
  }
  return Object.freeze({ clientId });
}

const STORAGE_ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const STORAGE = 'AzureWebJobsStorage';

/**
 * The storage setting as the Functions host reads it: `AzureWebJobsStorage` (a connection string),
 * or `AzureWebJobsStorage__accountName` / `AzureWebJobsStorage__tableServiceUri` with the optional
 * `__credential` (`managedidentity`) and `__clientId` or `__managedIdentityResourceId`; neither:
 * {@link DEFAULT_STORAGE}. Exported for the local host, which starts Azurite for the default.
 * @throws ConfigError naming the setting when the forms are mixed or a value is malformed.
 */
export function parseStorage(env: Env): StorageSettings {
  const setting = (suffix: string): [name: string, value: string | undefined] => [
    `${STORAGE}__${suffix}`,
    nonEmpty(env[`${STORAGE}__${suffix}`]),
  ];
  const accountName = setting('accountName');
  const tableServiceUri = setting('tableServiceUri');
  const credential = setting('credential');
  const clientId = setting('clientId');
  const resourceId = setting('managedIdentityResourceId');
  const identityForms = [accountName, tableServiceUri, credential, clientId, resourceId].filter(([, value]) => value !== undefined);

  const connectionString = nonEmpty(env[STORAGE]);
  if (connectionString) {
    const [other] = identityForms;
    if (other) throw new ConfigError(`${STORAGE}: a connection string excludes the identity-based ${other[0]}; set one or the other`);
    return Object.freeze({ kind: 'connectionString' as const, connectionString });
  }
  if (accountName[1] && tableServiceUri[1]) {
    throw new ConfigError(`${tableServiceUri[0]}: names the table endpoint, so ${accountName[0]} must not be set as well`);
  }
  let uri: string | undefined;
  if (accountName[1]) {
    if (!STORAGE_ACCOUNT_NAME.test(accountName[1])) {
      throw new ConfigError(
        `${accountName[0]}: must be a storage account name (3-24 lower-case letters and digits), got "${accountName[1]}"`,
      );
    }
    uri = `https://${accountName[1]}.table.${STORAGE_ENDPOINT_SUFFIX}`;
  } else if (tableServiceUri[1]) {
    checkRemoteUrl(tableServiceUri[0], tableServiceUri[1]);
    const url = new URL(tableServiceUri[1]);
    if (url.search || url.hash || url.username || url.password) {
      throw new ConfigError(
        `${tableServiceUri[0]}: must be a table service URI like https://contoso.table.core.windows.net, got "${tableServiceUri[1]}"`,
      );
    }
    uri = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  }
  if (!uri) {
    // The host takes blob and queue URIs; the broker's tables need the table one.
    const [other] =
      identityForms.length > 0 ? identityForms : [setting('blobServiceUri'), setting('queueServiceUri')].filter(([, value]) => value);
    if (other) throw new ConfigError(`${other[0]}: needs ${accountName[0]} or ${tableServiceUri[0]} (the broker keeps its tables there)`);
    return Object.freeze({ kind: 'connectionString' as const, connectionString: DEFAULT_STORAGE });
  }
  if (credential[1] !== undefined && credential[1].toLowerCase() !== 'managedidentity') {
    throw new ConfigError(`${credential[0]}: must be managedidentity, got "${credential[1]}"`);
  }
  for (const [name, value] of [clientId, resourceId]) {
    if (value !== undefined && credential[1] === undefined) {
      throw new ConfigError(`${name}: needs ${credential[0]}=managedidentity`);
    }
  }
  if (clientId[1] && resourceId[1]) {
    throw new ConfigError(`${resourceId[0]}: names the identity, so ${clientId[0]} must not be set as well`);
  }
  if (clientId[1] && !UUID.test(clientId[1])) {
    throw new ConfigError(`${clientId[0]}: must be the client id (a GUID) of a user-assigned managed identity, got "${clientId[1]}"`);
  }
  if (
    resourceId[1] &&
    !/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/[^/]+$/i.test(
      resourceId[1],
    )
  ) {
    throw new ConfigError(`${resourceId[0]}: must be the ARM id of a user-assigned managed identity, got "${resourceId[1]}"`);
  }
  return Object.freeze({ kind: 'identity' as const, tableServiceUri: uri, clientId: clientId[1], resourceId: resourceId[1] });
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function checkUrl(setting: string, value: string, protocols: string[]): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${setting}: "${value}" is not a URL`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${setting}: must be an ${protocols.map((p) => p.replace(':', '')).join(' or ')} URL, got "${value}"`);
  }
  return url;
}

/**
 * Why `value` is not a URL the broker may fetch or post to, or undefined when it is: `https:`, or
 * `http:` to exactly `localhost`, `127.0.0.1` or `[::1]` (local development only). Tokens,
 * signatures and notifications never travel in clear text over a network.
 */
export function remoteUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value}" is not a URL`;
  }
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && isLoopbackHttpUrl(value)) return undefined;
  return `must be an https URL (http only to localhost for local development), got "${value}"`;
}

/**
 * Whether `value` is an `http:` URL written to exactly `localhost`, `127.0.0.1` or `[::1]` (any
 * port). The text as written is matched, not the parsed host: the URL parser turns `127.1`,
 * `0x7f000001` or `127.0.0.%31` into `127.0.0.1`, and those (like `*.localhost` and the rest of
 * 127.0.0.0/8) are not allowed.
 */
export function isLoopbackHttpUrl(value: string): boolean {
  // What the URL parser ignores: leading and trailing C0 controls and spaces, tabs and newlines anywhere.
  // eslint-disable-next-line no-control-regex -- those are the characters in question
  const text = value.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, '').replace(/[\t\n\r]/g, '');
  return /^http:\/\/(?:localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?(?:[/?#]|$)/i.test(text);
}

function checkRemoteUrl(setting: string, value: string): void {
  const problem = remoteUrlProblem(value);
  if (problem) throw new ConfigError(`${setting}: ${problem}`);
}

function vaultUri(setting: string, value: string): string {
  const url = checkUrl(setting, value, ['https:']);
  if (url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw new ConfigError(`${setting}: must be a vault URI like https://contoso.vault.azure.net/, got "${value}"`);
  }
  return `${url.origin}/`;
}

/**
 * What makes two vault URIs the same vault: scheme and host compared without case, the default
 * port, a trailing `/` and the host's trailing `.` (the same DNS name) ignored. E.g.
 * `https://CONTOSO.vault.azure.net:443` and `https://contoso.vault.azure.net./` are both
 * `https://contoso.vault.azure.net/`.
 */
export function vaultIdentity(uri: string): string {
  try {
    const url = new URL(uri);
    return `${url.protocol}//${url.hostname.replace(/\.$/, '')}${url.port ? `:${url.port}` : ''}/`;
  } catch {
    return `${uri.toLowerCase().replace(/\/+$/, '')}/`;
  }
}

function parseVaults(env: Env, opts: { uriRequired: boolean } = { uriRequired: true }): Map<string, string> {
  const vaults = new Map<string, string>();
  const defaultUri = nonEmpty(env.KEY_VAULT_URI);
  if (defaultUri) vaults.set(DEFAULT_VAULT_ALIAS, vaultUri('KEY_VAULT_URI', defaultUri));
  const aliases = nonEmpty(env.KEY_VAULT_ALIASES);
  if (aliases) {
    for (const part of aliases
      .split(';')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const eq = part.indexOf('=');
      const alias = eq > 0 ? part.slice(0, eq).trim() : '';
      if (!ALIAS.test(alias)) {
        throw new ConfigError(
          `KEY_VAULT_ALIASES: "${part}" must be alias=https://<vault>.vault.azure.net/ with an alias of letters, digits, - or _`,
        );
      }
      if (vaults.has(alias))
        throw new ConfigError(`KEY_VAULT_ALIASES: alias "${alias}" is used twice (or is "default", which is KEY_VAULT_URI)`);
      const uri = vaultUri('KEY_VAULT_ALIASES', part.slice(eq + 1).trim());
      // One vault, one alias: policy patterns, deny rules and reserved names are written per alias.
      const twin = [...vaults].find(([, other]) => vaultIdentity(other) === vaultIdentity(uri));
      if (twin) throw new ConfigError(`KEY_VAULT_ALIASES: "${alias}" names the same vault as "${twin[0]}" (${twin[1]})`);
      vaults.set(alias, uri);
    }
  }
  if (vaults.size === 0 && opts.uriRequired) {
    throw new ConfigError(
      'KEY_VAULT_URI: must be set to the vault URI, e.g. https://contoso-vault2.vault.azure.net/ (npm start runs an emulator when it is not set)',
    );
  }
  return vaults;
}

function parseResourceIds(value: string | undefined, vaults: Map<string, string>): Map<string, string> {
  const result = new Map<string, string>();
  const raw = nonEmpty(value);
  if (!raw) return result;
  for (const part of raw
    .split(/[;,]/)
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    const id = eq > 0 ? part.slice(eq + 1).trim() : part;
    const match = VAULT_RESOURCE_ID.exec(id);
    if (!match) {
      throw new ConfigError(
        `KEY_VAULT_RESOURCE_IDS: "${id}" is not a vault resource id (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>)`,
      );
    }
    // Either alias=id, or a bare id matched to the vault of the same name.
    let alias = eq > 0 ? part.slice(0, eq).trim() : undefined;
    if (alias === undefined) {
      const vaultName = (match[1] ?? '').toLowerCase();
      alias = [...vaults].find(([, uri]) => new URL(uri).hostname.split('.')[0]?.toLowerCase() === vaultName)?.[0];
      if (!alias) throw new ConfigError(`KEY_VAULT_RESOURCE_IDS: no configured vault is named "${match[1]}"; write alias=<resource id>`);
    }
    if (!vaults.has(alias)) throw new ConfigError(`KEY_VAULT_RESOURCE_IDS: "${alias}" is not a configured vault alias`);
    result.set(alias, id);
  }
  return result;
}

/** `CACHE_SHARED` and `CACHE_SHARED_KEY_SECRET`: the key's name is checked whenever it is set. */
function parseSharedCache(env: Env): AppConfig['sharedCache'] {
  const mode = nonEmpty(env.CACHE_SHARED)?.toLowerCase() ?? 'off';
  if (!(CACHE_SHARED_MODES as readonly string[]).includes(mode)) {
    throw new ConfigError(`CACHE_SHARED: must be "table" or "off", got ${JSON.stringify(nonEmpty(env.CACHE_SHARED) ?? '')}`);
  }
  const keySecret = nonEmpty(env.CACHE_SHARED_KEY_SECRET);
  if (keySecret !== undefined && !SECRET_NAME.test(keySecret)) {
    throw new ConfigError(
      `CACHE_SHARED_KEY_SECRET: must be the name of a secret in the default vault (1 to 127 letters, digits and dashes), got ${JSON.stringify(keySecret)}`,
    );
  }
  if (mode === 'off') return undefined;
  if (keySecret === undefined) {
    throw new ConfigError(
      'CACHE_SHARED_KEY_SECRET: must be set when CACHE_SHARED is "table", to the name of the Key Vault secret holding the data key',
    );
  }
  return Object.freeze({ keySecret });
}

/** A number of hours, decimals allowed (`1.5`), at least 0. */
function hoursSetting(env: Env, name: string, fallback: number): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(Number(raw))) {
    throw new ConfigError(`${name}: must be a number of hours (0 or more, decimals allowed, e.g. 1.5), got "${raw}"`);
  }
  return Number(raw);
}

/** GUID form of a client id, as Entra ID issues them. */
const CLIENT_ID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function parseRotation(env: Env, vaults: ReadonlyMap<string, unknown>): RotationSettings | undefined {
  // The hours and targets are checked whether or not rotation is on: a typo should not wait for the day it is turned on.
  const adoptionWindowHours = hoursSetting(env, 'ROTATION_ADOPTION_WINDOW_HOURS', DEFAULT_ROTATION_ADOPTION_WINDOW_HOURS);
  const retireAfterHours = hoursSetting(env, 'ROTATION_RETIRE_AFTER_HOURS', DEFAULT_ROTATION_RETIRE_AFTER_HOURS);
  const targets = parseRotationTargets(env.ROTATION_TARGETS, vaults);
  const identityClientId = nonEmpty(env.ROTATION_IDENTITY_CLIENT_ID);
  if (identityClientId === undefined) return undefined;
  if (!CLIENT_ID_RE.test(identityClientId)) {
    throw new ConfigError(
      `ROTATION_IDENTITY_CLIENT_ID: must be the client id (a GUID) of the user-assigned identity that rotates, got "${identityClientId}"`,
    );
  }
  return Object.freeze({ identityClientId, adoptionWindowHours, retireAfterHours, targets });
}

/** A Key Vault secret name (Learn: "About keys, secrets, and certificates": 1-127 letters, digits, `-`). */
const SECRET_NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;

/**
 * `ROTATION_TARGETS`: a JSON object, `{"<name>" or "<alias>/<name>": "<application object id>"}`
 * (docs/settings.md); a name without an alias is in the default vault.
 */
function parseRotationTargets(raw: string | undefined, vaults: ReadonlyMap<string, unknown>): ReadonlyMap<string, string> {
  const text = nonEmpty(raw);
  const targets = new Map<string, string>();
  if (text === undefined) return targets;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError('ROTATION_TARGETS: is not valid JSON');
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError('ROTATION_TARGETS: must be a JSON object of "<secret>" or "<alias>/<secret>" to an application object id');
  }
  for (const [entry, objectId] of Object.entries(json as Record<string, unknown>)) {
    const slash = entry.indexOf('/');
    const alias = slash < 0 ? DEFAULT_VAULT_ALIAS : entry.slice(0, slash);
    const name = slash < 0 ? entry : entry.slice(slash + 1);
    if (!SECRET_NAME_RE.test(name)) {
      throw new ConfigError(`ROTATION_TARGETS: "${entry}" must be <secret> or <alias>/<secret> with a Key Vault secret name`);
    }
    if (!vaults.has(alias)) {
      throw new ConfigError(
        `ROTATION_TARGETS: "${entry}" names vault "${alias}", which is not configured (known: ${[...vaults.keys()].join(', ')})`,
      );
    }
    if (typeof objectId !== 'string' || !CLIENT_ID_RE.test(objectId)) {
      throw new ConfigError(`ROTATION_TARGETS: "${entry}" must map to the application's object id (a GUID)`);
    }
    const key = rotationTargetKey(alias, name);
    if (targets.has(key)) throw new ConfigError(`ROTATION_TARGETS: "${entry}" names a secret twice (names are case-insensitive)`);
    targets.set(key, objectId.toLowerCase());
  }
  return targets;
}

function intSetting(env: Env, name: string, fallback: number, min: number): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
    throw new ConfigError(`${name}: must be a whole number of at least ${min}, got "${raw}"`);
  }
  return Number(raw);
}

function parseJson<S extends v.GenericSchema>(
  setting: string,
  raw: string | undefined,
  schema: S,
  fallback: v.InferOutput<S>,
): v.InferOutput<S> {
  const text = nonEmpty(raw);
  if (text === undefined) return fallback;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError(`${setting}: is not valid JSON`);
  }
  const parsed = v.safeParse(schema, json);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const where = formatPath((issue.path ?? []).map((item) => item.key as PropertyKey));
    throw new ConfigError(`${setting}: ${where ? `${where} ` : ''}${issue.message}`);
  }
  return deepFreeze(parsed.output);
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
