import { AzureNamedKeyCredential, AzureSASCredential, RestError, TableClient } from '@azure/data-tables';
import type { TableServiceClientOptions } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';

/** The storage emulator's fixed account (the same in Azurite and the old Storage Emulator). */
export const DEVELOPMENT_ACCOUNT_NAME = 'devstoreaccount1';
/** The emulator's published, well-known account key: not a secret. */
export const DEVELOPMENT_ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
/** The ports `UseDevelopmentStorage=true` means. */
export const DEVELOPMENT_STORAGE_PORTS = { blob: 10000, queue: 10001, table: 10002 } as const;

const DEFAULT_ENDPOINT_SUFFIX = 'core.windows.net';

/**
 * The explicit connection string for an emulator account on 127.0.0.1 with the given ports,
 * equivalent to `UseDevelopmentStorage=true` for the default ports. Naming every endpoint lets
 * any client reach an emulator on any port. `https` for an emulator started with a certificate.
 */
export function developmentConnectionString(
  ports: { blob: number; queue: number; table: number } = DEVELOPMENT_STORAGE_PORTS,
  protocol: 'http' | 'https' = 'http',
): string {
  const endpoint = (port: number): string => `${protocol}://127.0.0.1:${port}/${DEVELOPMENT_ACCOUNT_NAME}`;
  return [
    `DefaultEndpointsProtocol=${protocol}`,
    `AccountName=${DEVELOPMENT_ACCOUNT_NAME}`,
    `AccountKey=${DEVELOPMENT_ACCOUNT_KEY}`,
    `BlobEndpoint=${endpoint(ports.blob)}`,
    `QueueEndpoint=${endpoint(ports.queue)}`,
    `TableEndpoint=${endpoint(ports.table)}`,
  ].join(';');
}

/**
 * A `TableClient` for `tableName` in the storage account of the storage setting (or of a
 * connection string).
 *
 * Identity-based storage (`AzureWebJobsStorage__accountName` / `__tableServiceUri`) authenticates
 * with `credential`, by default a `DefaultAzureCredential` (managed identity in Azure); `http`
 * is allowed to a loopback URI only, as the settings allow it.
 *
 * A connection string may be `UseDevelopmentStorage=true` (Azurite on 127.0.0.1:10002), an
 * account-key or SAS string (with `TableEndpoint` or `AccountName` + `EndpointSuffix`, default
 * `core.windows.net`), or `TableEndpoint=https://...` alone, which authenticates like the identity
 * form. `http` endpoints (emulators) are allowed because the connection string asks for them.
 * @throws Error naming what is missing when a connection string names no table endpoint or account.
 */
export function createTableClient(storage: StorageSettings | string, tableName: string, credential?: TokenCredential): TableClient {
  if (typeof storage !== 'string') {
    if (storage.kind === 'identity') return identityClient(storage.tableServiceUri, tableName, credential);
    return createTableClient(storage.connectionString, tableName, credential);
  }
  const parts = parseConnectionString(storage);
  if (parts.get('usedevelopmentstorage')?.toLowerCase() === 'true') {
    return createTableClient(developmentConnectionString(), tableName);
  }
  const accountName = parts.get('accountname');
  const url = tableEndpoint(parts, accountName);
  const options: TableServiceClientOptions = { allowInsecureConnection: new URL(url).protocol === 'http:' };
  const accountKey = parts.get('accountkey');
  if (accountKey) {
    const name = accountName ?? accountNameFromUrl(url);
    return new TableClient(url, tableName, new AzureNamedKeyCredential(name, accountKey), options);
  }
  const sas = parts.get('sharedaccesssignature');
  if (sas) return new TableClient(url, tableName, new AzureSASCredential(sas), options);
  return identityClient(url, tableName, credential);
}

function identityClient(url: string, tableName: string, credential: TokenCredential | undefined): TableClient {
  const options: TableServiceClientOptions = { allowInsecureConnection: new URL(url).protocol === 'http:' };
  return new TableClient(url, tableName, credential ?? defaultCredential(), options);
}

/** Loaded only for identity-based storage, so key-based apps never pay for it at cold start. */
function defaultCredential(): TokenCredential {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  const identity = require('@azure/identity') as typeof import('@azure/identity');
  return new identity.DefaultAzureCredential();
}

/** Tables already created (or found) by this process, by account URL and table name. */
const ensuredTables = new Map<string, Promise<void>>();

/**
 * Creates the client's table if it does not exist, once per process: later calls share the first
 * call's promise. `409 TableAlreadyExists` counts as success (another instance created it); a
 * failure is not remembered, so the next call tries again.
 */
export function ensureTable(client: TableClient): Promise<void> {
  const key = `${client.url}|${client.tableName}`;
  let ensured = ensuredTables.get(key);
  if (!ensured) {
    ensured = client.createTable().catch((err: unknown) => {
      if (tableErrorStatus(err) === 409) return;
      ensuredTables.delete(key);
      throw err;
    });
    ensuredTables.set(key, ensured);
  }
  return ensured;
}

/** The HTTP status of a failed Table storage call, or undefined when it is not a service answer. */
export function tableErrorStatus(err: unknown): number | undefined {
  return err instanceof RestError ? err.statusCode : undefined;
}

/** `key=value;...` into a map with lower-case keys; values keep their `=` (SAS tokens have them). */
function parseConnectionString(connectionString: string): Map<string, string> {
  const parts = new Map<string, string>();
  for (const element of connectionString.split(';')) {
    const at = element.indexOf('=');
    if (at <= 0) continue;
    parts.set(element.slice(0, at).trim().toLowerCase(), element.slice(at + 1).trim());
  }
  return parts;
}

function tableEndpoint(parts: Map<string, string>, accountName: string | undefined): string {
  const explicit = parts.get('tableendpoint');
  if (explicit) return explicit.replace(/\/+$/, '');
  if (!accountName) {
    throw new Error('Storage connection string names neither TableEndpoint nor AccountName');
  }
  const protocol = (parts.get('defaultendpointsprotocol') ?? 'https').toLowerCase();
  if (protocol !== 'https' && protocol !== 'http') {
    throw new Error('Storage connection string: DefaultEndpointsProtocol must be https or http');
  }
  const suffix = parts.get('endpointsuffix') ?? DEFAULT_ENDPOINT_SUFFIX;
  return `${protocol}://${accountName}.table.${suffix}`;
}

/** `https://acct.table.core.windows.net` or path-style `http://127.0.0.1:10002/acct`. */
function accountNameFromUrl(url: string): string {
  const { hostname, pathname } = new URL(url);
  const [first, second] = hostname.split('.');
  if (second === 'table' && first) return first;
  const segment = pathname.split('/').find((s) => s.length > 0);
  if (!segment) throw new Error('Storage connection string: AccountName is missing');
  return segment;
}

/**
 * A storage failure as a short, safe log phrase: the HTTP status and the Table service's error code.
 * `@azure/data-tables` puts the raw response body into `RestError.message`; that is never logged.
 */
export function describeStorageError(err: unknown): string {
  if (!(err instanceof Error)) return 'non-error value thrown';
  const status = tableErrorStatus(err);
  if (status !== undefined) return `${status} ${storageErrorCode(err) ?? 'storage error'}`;
  return `${err.name}: ${(err.message.split('\n')[0] ?? '').slice(0, 200)}`;
}

/** The Table service's error code: `x-ms-error-code`, or `odata.error.code` of the body the SDK puts in the message. */
function storageErrorCode(err: Error): string | undefined {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  try {
    const body = JSON.parse(err.message) as { 'odata.error'?: { code?: unknown } } | null;
    const inner = body?.['odata.error']?.code;
    return typeof inner === 'string' && /^[A-Za-z]{1,100}$/.test(inner) ? inner : undefined;
  } catch {
    return undefined;
  }
}
