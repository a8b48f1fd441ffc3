/**
 * The deployment file of `npm run deploy` (docs/deploying.md, "The deployment file"): where the broker goes, the vaults it
 * reads, and its settings. Parsed and checked here, before anything in Azure is read or changed; the
 * broker's own settings are then checked by the app's `loadConfig` (see {@link appSettingsFor}).
 */
import { readFileSync } from 'node:fs';
import * as v from 'valibot';
import { DEFAULT_VAULT_ALIAS, loadConfig } from '../../shared/config';
import { ConfigError } from '../../shared/errors';
import { JsonSyntaxError, parseJsonText } from '../../local/jsonText';

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** App Service names: 2-60 letters, digits and hyphens, not starting or ending with a hyphen. */
const APP_NAME = /^[a-zA-Z0-9][a-zA-Z0-9-]{0,58}[a-zA-Z0-9]$/;
const STORAGE_ACCOUNT = /^[a-z0-9]{3,24}$/;
const RESOURCE_GROUP = /^[-\w._()]{1,89}[-\w_()]$/;
const RESOURCE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9-]{1,61}[a-zA-Z0-9]$/;
const LOCATION = /^[a-z0-9]+$/;
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
export const VAULT_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([A-Za-z0-9-]{3,24})$/i;
export const IDENTITY_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/([A-Za-z0-9][A-Za-z0-9_-]{2,127})$/i;
export const TOPIC_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.EventGrid\/topics\/([A-Za-z0-9-]{3,50})$/i;

/**
 * Settings the deployment derives itself and the file may not set: the vaults (from `vaults`), the
 * storage (the app's identity), telemetry (the Application Insights it creates), the notification
 * endpoint when `notificationTopic` names the topic, and what Flex Consumption keeps out of app
 * settings (the runtime is in `functionAppConfig`).
 */
const DERIVED_SETTINGS = [
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
  'APPLICATION_INSIGHTS_NO_STATSBEAT',
  'APPLICATIONINSIGHTS_STATSBEAT_DISABLED',
  'APPLICATIONINSIGHTS_SDKSTATS_DISABLED',
  'KEY_VAULT_URI',
  'KEY_VAULT_ALIASES',
  'KEY_VAULT_RESOURCE_IDS',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'FUNCTIONS_WORKER_RUNTIME',
  'FUNCTIONS_EXTENSION_VERSION',
  'WEBSITE_RUN_FROM_PACKAGE',
  'WEBSITE_NODE_DEFAULT_VERSION',
  'ROTATION_IDENTITY_CLIENT_ID',
  'ROTATION_TARGETS',
] as const;

/** The broker's own settings (docs/settings.md, "The settings") a deployment file may give. */
export const BROKER_SETTINGS = [
  'ACCESS_POLICY',
  'AUTH_ISSUER',
  'AUTH_AUDIENCE',
  'CONSUMERS',
  'CACHE_TTL_SECONDS',
  'CACHE_MAX_ENTRIES',
  'CACHE_STALE_IF_ERROR_SECONDS',
  'CACHE_SHARED',
  'CACHE_SHARED_KEY_SECRET',
  'EXPIRY_WARNING_DAYS',
  'HEALTH_CHECK_SCHEDULE',
  'VAULT_EXPECTATIONS',
  'NOTIFY_EVENTGRID_ENDPOINT',
  'SIGNING_KEY_VAULT',
  'ADOPTION_WARNING_HOURS',
  'ROTATION_ADOPTION_WINDOW_HOURS',
  'ROTATION_RETIRE_AFTER_HOURS',
] as const;

const TARGETS_SHAPE = 'must be a JSON object of "<secret>" or "<alias>/<secret>" to an application object id (ROTATION_TARGETS)';
/** Settings that only mean something with rotation on (`rotation` in the file). */
const ROTATION_ONLY_SETTINGS = ['ROTATION_ADOPTION_WINDOW_HOURS', 'ROTATION_RETIRE_AFTER_HOURS'] as const;
/** Learn: "Naming rules and restrictions for Azure resources" (userAssignedIdentities: 3-128, alphanumerics, hyphens, underscores, starting with a letter or digit). */
const IDENTITY_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$/;

const settingValue = v.union(
  [v.string(), v.number(), v.boolean(), v.array(v.unknown()), v.record(v.string(), v.unknown())],
  'must be a string, number, boolean, list or object',
);

/**
 * A JSON object that takes only the fields of `entries`: an unknown one (a typo, as often as not) is
 * named with the allowed ones, taken from the entries themselves.
 */
function strictObject<const E extends v.ObjectEntries>(entries: E) {
  const allowed = Object.keys(entries).join(', ');
  return v.strictObject(entries, (issue) => {
    if (issue.expected === 'never') return `unknown field ${JSON.stringify(issue.input)} (allowed: ${allowed})`;
    if (issue.input === undefined && issue.path?.at(-1)?.origin === 'key') return 'is required';
    return 'must be a JSON object';
  });
}

/** An issue of {@link strictObject}'s: a field it does not take. */
function isUnknownField(issue: v.BaseIssue<unknown>): boolean {
  return issue.type === 'strict_object' && issue.expected === 'never';
}

const fileSchema = strictObject({
  $schema: v.optional(v.string()),
  subscriptionId: v.pipe(v.string('must be a string'), v.regex(UUID, 'must be a subscription id (a GUID)')),
  resourceGroup: v.pipe(v.string('must be a string'), v.regex(RESOURCE_GROUP, 'must be a resource group name')),
  location: v.pipe(v.string('must be a string'), v.regex(LOCATION, 'must be an Azure region name such as "westeurope"')),
  appName: v.pipe(
    v.string('must be a string'),
    v.regex(APP_NAME, 'must be 2-60 letters, digits and hyphens, not starting or ending with a hyphen'),
  ),
  storageAccount: v.optional(v.pipe(v.string(), v.regex(STORAGE_ACCOUNT, 'must be 3-24 lower-case letters and digits'))),
  logAnalyticsWorkspace: v.optional(v.pipe(v.string(), v.regex(RESOURCE_NAME, 'must be 3-63 letters, digits and hyphens'))),
  applicationInsights: v.optional(v.pipe(v.string(), v.regex(RESOURCE_NAME, 'must be 3-63 letters, digits and hyphens'))),
  plan: v.optional(v.pipe(v.string(), v.regex(RESOURCE_NAME, 'must be 3-63 letters, digits and hyphens'))),
  instanceMemoryMB: v.optional(v.picklist([512, 2048, 4096], 'must be 512, 2048 or 4096'), 2048),
  maximumInstanceCount: v.optional(v.pipe(v.number(), v.integer('must be an integer'), v.minValue(1), v.maxValue(1000)), 100),
  tags: v.optional(v.record(v.string(), v.string('must be a string')), {}),
  vaults: v.pipe(
    v.record(
      v.pipe(v.string(), v.regex(ALIAS, 'is not a vault alias')),
      v.pipe(
        v.string('must be a vault resource id'),
        v.regex(
          VAULT_ID,
          'must be a vault resource id (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>)',
        ),
      ),
      'must be an object of vault alias to vault resource id',
    ),
    v.check((vaults) => DEFAULT_VAULT_ALIAS in vaults, `must name the "${DEFAULT_VAULT_ALIAS}" vault`),
  ),
  events: v.optional(
    strictObject({
      schema: v.optional(
        v.picklist(['CloudEventSchemaV1_0', 'EventGridSchema'], 'must be CloudEventSchemaV1_0 or EventGridSchema'),
        'CloudEventSchemaV1_0',
      ),
    }),
    { schema: 'CloudEventSchemaV1_0' as const },
  ),
  notificationTopic: v.optional(v.pipe(v.string(), v.regex(TOPIC_ID, 'must be an Event Grid topic resource id'))),
  identity: v.optional(
    v.pipe(
      v.string('must be a user-assigned identity resource id'),
      v.regex(
        IDENTITY_ID,
        'must be a user-assigned identity resource id (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>)',
      ),
    ),
  ),
  rotation: v.optional(
    strictObject({
      identityName: v.optional(
        v.pipe(
          v.string('must be a string'),
          v.regex(IDENTITY_NAME, 'must be 3-128 letters, digits, hyphens and underscores, starting with a letter or digit'),
        ),
      ),
      targets: v.optional(
        v.pipe(
          v.custom<Record<string, unknown>>((x) => typeof x === 'object' && x !== null && !Array.isArray(x), TARGETS_SHAPE),
          v.record(
            v.string(),
            v.pipe(v.string('must be an application object id (a GUID)'), v.regex(UUID, 'must be an application object id (a GUID)')),
            TARGETS_SHAPE,
          ),
        ),
        {},
      ),
    }),
  ),
  smokeTest: v.optional(v.boolean('must be true or false'), true),
  sdkStatistics: v.optional(v.boolean('must be true or false'), false),
  settings: v.optional(v.record(v.string(), settingValue), {}),
});

/** A parsed deployment file, names filled in. */
export interface Deployment {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly location: string;
  readonly appName: string;
  readonly storageAccount: string;
  readonly logAnalyticsWorkspace: string;
  readonly applicationInsights: string;
  readonly plan: string;
  readonly instanceMemoryMB: 512 | 2048 | 4096;
  readonly maximumInstanceCount: number;
  readonly tags: Readonly<Record<string, string>>;
  /** By alias (`default` first), the vault's ARM id and its parts. */
  readonly vaults: readonly VaultRef[];
  readonly eventSchema: 'CloudEventSchemaV1_0' | 'EventGridSchema';
  readonly notificationTopic: string | undefined;
  /**
   * The app's user-assigned identity (resource id), used for everything: Key Vault, storage,
   * telemetry, the code package. Undefined: the app's system-assigned identity.
   */
  readonly identity: string | undefined;
  /**
   * Rotation of Entra application client secrets (docs/rotation.md): the user-assigned identity the
   * deployment creates for it and the secrets it may rotate, each with its application. Undefined: rotation off, no
   * identity, and the app never writes to a vault.
   */
  readonly rotation: RotationRef | undefined;
  readonly smokeTest: boolean;
  /** Let the Application Insights SDK send its own statistics to Microsoft (statsbeat, SDK stats); off by default. */
  readonly sdkStatistics: boolean;
  /** The broker settings as app setting strings (objects and lists as compact JSON). */
  readonly settings: Readonly<Record<string, string>>;
}

export interface RotationRef {
  /** Name of the user-assigned identity, in the deployment's resource group (default `<appName>-rotation`). */
  readonly identityName: string;
  /** Its resource id. */
  readonly identityId: string;
  /** `ROTATION_TARGETS`: secret (`name` or `alias/name`) → the application object id it may rotate. */
  readonly targets: Readonly<Record<string, string>>;
  /** The distinct application object ids of `targets`, lower case (one ownership command printed each). */
  readonly applications: readonly string[];
}

export interface VaultRef {
  readonly alias: string;
  readonly id: string;
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly name: string;
}

/** Reads and checks a deployment file; a problem is a ConfigError naming the file and the field. */
export function readDeploymentFile(path: string): Deployment {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err: unknown) {
    throw new ConfigError(`${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let json: unknown;
  try {
    json = parseJsonText(text, path);
  } catch (err: unknown) {
    if (err instanceof JsonSyntaxError) throw new ConfigError(err.message);
    throw err;
  }
  return parseDeployment(json, path);
}

/**
 * {@link readDeploymentFile} on JSON already read; `source` names it in messages. Everything is
 * checked offline, the broker's settings too (see {@link checkSettingsOffline}): a bad file stops
 * the deployment before a sign-in.
 */
export function parseDeployment(json: unknown, source = 'deployment file'): Deployment {
  // valibot takes a list for an object (with none of the fields): say what is wrong with it instead.
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`${source}: must be a JSON object`);
  const parsed = v.safeParse(fileSchema, json);
  if (!parsed.success) {
    // A misspelt field is the cause of its "is required" twin: it goes first.
    const issue = parsed.issues.find(isUnknownField) ?? parsed.issues[0];
    const keys = (issue.path ?? []).map((p) => String(p.key));
    if (isUnknownField(issue)) {
      const parent = keys.slice(0, -1).join('.');
      throw new ConfigError(`${source}: ${parent ? `${parent}: ` : ''}${issue.message}`);
    }
    const where = keys.join('.');
    throw new ConfigError(`${source}: ${where ? `${where} ` : ''}${issue.message}`);
  }
  const f = parsed.output;
  const settings: Record<string, string> = {};
  for (const [key, value] of Object.entries(f.settings)) {
    if ((DERIVED_SETTINGS as readonly string[]).includes(key) || key.startsWith('AzureWebJobsStorage')) {
      throw new ConfigError(`${source}: settings.${key} is set by the deployment itself and may not be given`);
    }
    if (key === 'NOTIFY_EVENTGRID_ENDPOINT' && f.notificationTopic) {
      throw new ConfigError(`${source}: settings.NOTIFY_EVENTGRID_ENDPOINT comes from notificationTopic; give one or the other`);
    }
    if ((ROTATION_ONLY_SETTINGS as readonly string[]).includes(key) && !f.rotation) {
      throw new ConfigError(`${source}: settings.${key} has no effect without "rotation"; add "rotation": {} or remove it`);
    }
    if (!(BROKER_SETTINGS as readonly string[]).includes(key)) {
      throw new ConfigError(`${source}: settings.${key} is not a setting of the broker (known: ${BROKER_SETTINGS.join(', ')})`);
    }
    settings[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  // Consumption plans take NCRONTAB only; the hh:mm:ss interval form is for dedicated plans.
  const schedule = settings.HEALTH_CHECK_SCHEDULE;
  if (schedule !== undefined && /^\s*\d{1,2}:\d{2}:\d{2}\s*$/.test(schedule)) {
    throw new ConfigError(
      `${source}: settings.HEALTH_CHECK_SCHEDULE: Flex Consumption takes NCRONTAB only (e.g. "0 */15 * * * *"), not hh:mm:ss`,
    );
  }
  const vaults = Object.entries(f.vaults)
    .map(([alias, id]): VaultRef => {
      const m = VAULT_ID.exec(id) as RegExpExecArray;
      return { alias, id, subscriptionId: m[1] as string, resourceGroup: m[2] as string, name: m[3] as string };
    })
    .sort((a, b) => (a.alias === DEFAULT_VAULT_ALIAS ? -1 : b.alias === DEFAULT_VAULT_ALIAS ? 1 : a.alias.localeCompare(b.alias)));
  const names = new Set<string>();
  for (const vault of vaults) {
    if (names.has(vault.name.toLowerCase())) throw new ConfigError(`${source}: vaults: "${vault.name}" is named twice`);
    names.add(vault.name.toLowerCase());
  }
  const rotation = f.rotation && rotationOf(f.subscriptionId, f.resourceGroup, f.appName, f.rotation);
  // The resolve path keeps its read-only identity: the writer must be another one (docs/security.md).
  if (rotation && f.identity?.toLowerCase() === rotation.identityId.toLowerCase()) {
    throw new ConfigError(
      `${source}: rotation.identityName names the app's own identity ("identity"); rotation needs an identity of its own`,
    );
  }
  const deployment: Deployment = Object.freeze({
    subscriptionId: f.subscriptionId,
    resourceGroup: f.resourceGroup,
    location: f.location,
    appName: f.appName,
    storageAccount: f.storageAccount ?? defaultStorageAccount(f.appName),
    logAnalyticsWorkspace: f.logAnalyticsWorkspace ?? `${f.appName}-logs`,
    applicationInsights: f.applicationInsights ?? f.appName,
    plan: f.plan ?? `${f.appName}-plan`,
    instanceMemoryMB: f.instanceMemoryMB,
    maximumInstanceCount: f.maximumInstanceCount,
    tags: f.tags,
    vaults,
    eventSchema: f.events.schema,
    notificationTopic: f.notificationTopic,
    identity: f.identity,
    rotation,
    smokeTest: f.smokeTest,
    sdkStatistics: f.sdkStatistics,
    settings,
  });
  try {
    checkSettingsOffline(deployment);
  } catch (err: unknown) {
    if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`);
    throw err;
  }
  return deployment;
}

function rotationOf(
  subscriptionId: string,
  resourceGroup: string,
  appName: string,
  r: { identityName?: string; targets: Record<string, string> },
): RotationRef {
  const identityName = r.identityName ?? `${appName}-rotation`;
  return Object.freeze({
    identityName,
    identityId: `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${identityName}`,
    targets: Object.freeze({ ...r.targets }),
    applications: Object.freeze([...new Set(Object.values(r.targets).map((id) => id.toLowerCase()))]),
  });
}

/** The app name's letters and digits, lower case, with `st`: a storage account name (3-24). */
function defaultStorageAccount(appName: string): string {
  return `${appName
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 22)}st`.padEnd(3, '0');
}

/** What the deployment learns from Azure before it can write the app settings. */
export interface Discovered {
  /** By alias, the vault's URI (`properties.vaultUri`). */
  readonly vaultUris: ReadonlyMap<string, string>;
  /** The Application Insights connection string; undefined while the component does not exist. */
  readonly appInsightsConnectionString: string | undefined;
  /** The notification topic's endpoint, when `notificationTopic` is set. */
  readonly notifyEndpoint: string | undefined;
  /** The client id of `identity`, when the file names one; undefined while it is unknown. */
  readonly identityClientId?: string | undefined;
  /** The client id of the rotation identity, with `rotation`; undefined while it does not exist. */
  readonly rotationClientId?: string | undefined;
}

/**
 * {@link appSettingsFor}'s check, before anything is read from Azure: each vault's URI as Azure
 * gives it to a vault of that name in the public cloud, and the stand-ins for what Azure assigns
 * on creation. The deployment checks the settings again with the real values.
 * @throws ConfigError naming the setting (`settings: ACCESS_POLICY: ...`).
 */
export function checkSettingsOffline(d: Deployment): void {
  appSettingsFor(d, {
    vaultUris: new Map(d.vaults.map((x) => [x.alias, `https://${x.name.toLowerCase()}.vault.azure.net/`])),
    appInsightsConnectionString: undefined,
    notifyEndpoint: undefined,
  });
}

/** The Application Insights SDK's switches for what it sends to Microsoft besides the app's telemetry. */
export const SDK_STATISTICS_OFF = {
  APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
  APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true',
  APPLICATIONINSIGHTS_SDKSTATS_DISABLED: 'true',
} as const;

/** Stands for a value Azure assigns on creation, in `--what-if` output and in the settings check. */
export const KNOWN_AFTER_CREATE = '(known after create)';
/** A user-assigned identity's client id before it is read from Azure (`--what-if`, the offline check). */
const PLACEHOLDER_CLIENT_ID = '00000000-0000-0000-0000-000000000000';
const PLACEHOLDER_CONNECTION_STRING =
  'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://placeholder.in.applicationinsights.azure.com/';

/**
 * The Function App's app settings: the file's broker settings plus the derived ones. They are then
 * checked by the app's own `loadConfig`, so a setting the app would refuse at start-up stops the
 * deployment here instead.
 * @throws ConfigError naming the setting.
 */
export function appSettingsFor(d: Deployment, found: Discovered): Record<string, string> {
  const vaultUri = (alias: string): string => {
    const uri = found.vaultUris.get(alias);
    if (!uri) throw new ConfigError(`vaults.${alias}: the vault's URI is unknown`);
    return uri;
  };
  const others = d.vaults.filter((x) => x.alias !== DEFAULT_VAULT_ALIAS);
  const settings: Record<string, string> = {
    ...d.settings,
    AzureWebJobsStorage__accountName: d.storageAccount,
    KEY_VAULT_URI: vaultUri(DEFAULT_VAULT_ALIAS),
    KEY_VAULT_RESOURCE_IDS: d.vaults.map((x) => `${x.alias}=${x.id}`).join(';'),
    APPLICATIONINSIGHTS_CONNECTION_STRING: found.appInsightsConnectionString ?? KNOWN_AFTER_CREATE,
  };
  if (others.length > 0) settings.KEY_VAULT_ALIASES = others.map((x) => `${x.alias}=${vaultUri(x.alias)}`).join(';');
  if (d.notificationTopic) settings.NOTIFY_EVENTGRID_ENDPOINT = found.notifyEndpoint ?? KNOWN_AFTER_CREATE;
  // Rotation on: the identity the broker writes to vaults and calls Graph with (docs/rotation.md).
  // Only the secrets of rotation.targets rotate, each only into its application (none when empty).
  if (d.rotation) {
    settings.ROTATION_IDENTITY_CLIENT_ID = found.rotationClientId ?? KNOWN_AFTER_CREATE;
    settings.ROTATION_TARGETS = JSON.stringify(d.rotation.targets);
  }
  // Telemetry with the app's Entra token: the component takes no connection-string ingestion (Learn:
  // APPLICATIONINSIGHTS_AUTHENTICATION_STRING; the host reads it, and so does the app's own SDK).
  if (d.identity) {
    // Every client of the app picks this identity: DefaultAzureCredential by AZURE_CLIENT_ID, the
    // host's storage by __credential and __clientId (Learn: "Connecting to host storage with an identity").
    const clientId = found.identityClientId ?? PLACEHOLDER_CLIENT_ID;
    settings.AZURE_CLIENT_ID = clientId;
    settings.AzureWebJobsStorage__credential = 'managedidentity';
    settings.AzureWebJobsStorage__clientId = clientId;
    settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING = `ClientId=${clientId};Authorization=AAD`;
  } else {
    settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING = 'Authorization=AAD';
  }
  // A locked-down estate expects telemetry to its own resource and nothing else (docs/operations.md).
  if (!d.sdkStatistics) Object.assign(settings, SDK_STATISTICS_OFF);
  const check = { ...settings };
  if (check.APPLICATIONINSIGHTS_CONNECTION_STRING === KNOWN_AFTER_CREATE)
    check.APPLICATIONINSIGHTS_CONNECTION_STRING = PLACEHOLDER_CONNECTION_STRING;
  if (check.ROTATION_IDENTITY_CLIENT_ID === KNOWN_AFTER_CREATE) check.ROTATION_IDENTITY_CLIENT_ID = PLACEHOLDER_CLIENT_ID;
  if (check.NOTIFY_EVENTGRID_ENDPOINT === KNOWN_AFTER_CREATE)
    check.NOTIFY_EVENTGRID_ENDPOINT = 'https://placeholder.eventgrid.azure.net/api/events';
  try {
    loadConfig(check);
  } catch (err: unknown) {
    if (err instanceof ConfigError) throw new ConfigError(`settings: ${err.message}`);
    throw err;
  }
  return settings;
}
