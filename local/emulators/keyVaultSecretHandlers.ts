// The Key Vault secrets API, one handler per REST operation (named after it). Each takes the vault
// the request addresses (its part of the store) and the parsed request, and returns the JSON answer
// (null = 204) or throws an HttpError.
import { HttpError, notSupported, secretNotFound } from './keyVaultErrors';
import type { Json } from './keyVaultHttp';
import {
  type DeletedRecord,
  RECOVERABLE_DAYS,
  SECRET_NAME_RE,
  type SecretRecord,
  type SecretVersion,
  type Vault,
  addVersion,
  deletedOrThrow,
  lookupVersion,
  nowSeconds,
  purgeDeleted,
  recoverDeleted,
  softDelete,
} from './keyVaultStore';

/** A request to a vault's secrets API as the router parsed it. */
export interface SecretRequest {
  vault: Vault;
  query: URLSearchParams;
  apiVersion: string;
  /** Without query string and trailing slash, e.g. `/secrets/db-password/versions`. */
  path: string;
}

/** Told of each version a `PUT` creates (the emulator publishes its Event Grid event). */
export type NewVersionListener = (vault: Vault, name: string, version: SecretVersion) => void;

const RECOVERY_LEVEL = 'Recoverable+Purgeable';
const DEFAULT_PAGE = 25;
/** Key Vault service limits: a secret value is at most 25 KB. */
const MAX_VALUE_BYTES = 25 * 1024;

// ---------------------------------------------------------------- secrets

/** `GET /secrets/{name}[/{version}]`. */
export function getSecret(vault: Vault, name: string, version: string): Json {
  const { record, version: v } = lookupVersion(vault, name, version);
  if (!v.enabled) throw new HttpError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
  return bundle(vault, record, v, true);
}

/** `PUT /secrets/{name}`: a new version. */
export function setSecret(vault: Vault, name: string, body: Json | undefined, onNewVersion: NewVersionListener): Json {
  // Key Vault soft-delete: a deleted but recoverable name cannot be reused until it is recovered or purged.
  if (vault.deleted.has(name.toLowerCase())) {
    throw new HttpError(
      409,
      'Conflict',
      `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
    );
  }
  const value = body?.['value'];
  if (typeof value !== 'string') throw new HttpError(400, 'BadParameter', 'Property value is required.');
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES)
    throw new HttpError(400, 'BadParameter', 'Secret value is too large; the maximum size is 25 KB.');
  const attrs = parseAttributes(body?.['attributes']);
  const created = addVersion(vault, name, {
    value,
    contentType: optionalString(body?.['contentType'], 'contentType'),
    enabled: attrs.enabled ?? true,
    nbf: attrs.nbf ?? undefined,
    exp: attrs.exp ?? undefined,
    tags: parseTags(body?.['tags']),
  });
  onNewVersion(vault, name, created);
  return bundle(vault, vault.secrets.get(name.toLowerCase()) as SecretRecord, created, true);
}

/** `PATCH /secrets/{name}[/{version}]`: attributes, content type and tags of one version. */
export function updateSecret(vault: Vault, name: string, version: string, body: Json | undefined): Json {
  const { record, version: target } = lookupVersion(vault, name, version);
  const attrs = parseAttributes(body?.['attributes']);
  const contentType = optionalString(body?.['contentType'], 'contentType');
  const tags = parseTags(body?.['tags']);
  if (contentType !== undefined) target.contentType = contentType;
  if (attrs.enabled !== undefined) target.enabled = attrs.enabled;
  if (attrs.nbf !== undefined) target.nbf = attrs.nbf ?? undefined;
  if (attrs.exp !== undefined) target.exp = attrs.exp ?? undefined;
  if (tags !== undefined) target.tags = tags;
  target.updated = nowSeconds(vault);
  // Key Vault answers an update with the bundle minus its value.
  return bundle(vault, record, target, false);
}

/** `DELETE /secrets/{name}`: soft delete, all versions. */
export function deleteSecret(vault: Vault, name: string): Json {
  return deletedBundle(vault, softDelete(vault, name));
}

/** `GET /secrets`: the latest version of each secret, without values. */
export function listSecrets(req: SecretRequest): Json {
  const keys = [...req.vault.secrets.keys()].sort();
  return page(req, keys, (key) => {
    const record = req.vault.secrets.get(key) as SecretRecord;
    return item(req.vault, record, record.versions.at(-1) as SecretVersion, false);
  });
}

/** `GET /secrets/{name}/versions`. */
export function listSecretVersions(req: SecretRequest, name: string): Json {
  const record = req.vault.secrets.get(name.toLowerCase());
  if (!record) throw secretNotFound(name);
  // Skip tokens are positions in creation order, which never changes for a live secret.
  const keys = record.versions.map((_, i) => String(i).padStart(8, '0'));
  return page(req, keys, (key) => item(req.vault, record, record.versions[Number(key)] as SecretVersion, true));
}

/** `POST /secrets/{name}/backup`. */
export function backupSecret(): never {
  throw notSupported('backup');
}

/** `POST /secrets/restore`. */
export function restoreSecret(): never {
  throw notSupported('restore');
}

// ---------------------------------------------------------------- deleted secrets

/** `GET /deletedsecrets`. */
export function listDeletedSecrets(req: SecretRequest): Json {
  const keys = [...req.vault.deleted.keys()].sort();
  return page(req, keys, (key) => {
    const d = req.vault.deleted.get(key) as DeletedRecord;
    return { ...item(req.vault, d.record, d.record.versions.at(-1) as SecretVersion, false), ...deletedFields(req.vault, d) };
  });
}

/** `GET /deletedsecrets/{name}`. */
export function getDeletedSecret(vault: Vault, name: string): Json {
  return deletedBundle(vault, deletedOrThrow(vault, name));
}

/** `DELETE /deletedsecrets/{name}`: 204. */
export function purgeDeletedSecret(vault: Vault, name: string): null {
  purgeDeleted(vault, name);
  return null;
}

/** `POST /deletedsecrets/{name}/recover`: answers the latest version's bundle without its value. */
export function recoverDeletedSecret(vault: Vault, name: string): Json {
  const d = recoverDeleted(vault, name);
  return bundle(vault, d.record, d.record.versions.at(-1) as SecretVersion, false);
}

// ---------------------------------------------------------------- request parsing

/** @throws HttpError 400 when a path segment is not a valid Key Vault object name. */
export function checkName(name: string): void {
  if (!SECRET_NAME_RE.test(name)) throw new HttpError(400, 'BadParameter', `The request URI contains an invalid name: ${name}`);
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new HttpError(400, 'BadParameter', `Property ${field} must be a string.`);
  return value;
}

function parseTags(value: unknown): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((t) => typeof t !== 'string')) {
    throw new HttpError(400, 'BadParameter', 'Property tags must be an object of strings.');
  }
  return { ...(value as Record<string, string>) };
}

/** Parses SecretAttributes; `undefined` = not sent, `null` = clear (dates only). */
function parseAttributes(value: unknown): { enabled?: boolean; nbf?: number | null; exp?: number | null } {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new HttpError(400, 'BadParameter', 'Property attributes must be an object.');
  const a = value as Json;
  const out: { enabled?: boolean; nbf?: number | null; exp?: number | null } = {};
  if (a['enabled'] !== undefined && a['enabled'] !== null) {
    if (typeof a['enabled'] !== 'boolean') throw new HttpError(400, 'BadParameter', 'Property attributes.enabled must be a boolean.');
    out.enabled = a['enabled'];
  }
  for (const field of ['nbf', 'exp'] as const) {
    const raw = a[field];
    if (raw === undefined) continue;
    if (raw !== null && (typeof raw !== 'number' || !Number.isFinite(raw))) {
      throw new HttpError(400, 'BadParameter', `Property attributes.${field} must be a number of seconds since the epoch.`);
    }
    out[field] = raw === null ? null : Math.floor(raw);
  }
  return out;
}

// ---------------------------------------------------------------- answers

/**
 * One page of a listing; the skip token is the last key returned, so inserts do not shift pages.
 * Key Vault REST: `maxresults` is 1 to 25, default 25.
 */
function page(req: SecretRequest, sortedKeys: string[], toItem: (key: string) => Json): Json {
  const maxParam = req.query.get('maxresults');
  let size = DEFAULT_PAGE;
  if (maxParam !== null) {
    size = Number(maxParam);
    if (!Number.isInteger(size) || size < 1 || size > 25) {
      throw new HttpError(400, 'BadParameter', `Invalid maxresults value '${maxParam}'. The value must be between 1 and 25.`);
    }
  }
  const skip = req.query.get('$skiptoken');
  const after = skip === null ? undefined : Buffer.from(skip, 'base64url').toString('utf8');
  const start = after === undefined ? 0 : sortedKeys.findIndex((k) => k > after);
  const slice = start === -1 ? [] : sortedKeys.slice(start, start + size);
  const last = slice.at(-1);
  const more = last !== undefined && start + size < sortedKeys.length;
  let nextLink: string | null = null;
  if (more) {
    // Absolute, with :443 and api-version, exactly like the service; the SDK GETs it verbatim.
    const params = [`api-version=${encodeURIComponent(req.apiVersion)}`, `$skiptoken=${Buffer.from(last).toString('base64url')}`];
    if (maxParam !== null) params.push(`maxresults=${size}`);
    nextLink = `https://${req.vault.name}.vault.azure.net:443${req.path}?${params.join('&')}`;
  }
  return { value: slice.map(toItem), nextLink };
}

/** SecretBundle. */
function bundle(vault: Vault, record: SecretRecord, v: SecretVersion, withValue: boolean): Json {
  const out: Json = {};
  if (withValue) out['value'] = v.value;
  if (v.contentType !== undefined) out['contentType'] = v.contentType;
  out['id'] = `https://${vault.name}.vault.azure.net/secrets/${record.name}/${v.version}`;
  out['attributes'] = attributes(v);
  if (v.tags !== undefined) out['tags'] = v.tags;
  return out;
}

/** SecretItem: no value; the id carries the version only when listing versions. */
function item(vault: Vault, record: SecretRecord, v: SecretVersion, withVersion: boolean): Json {
  const out: Json = {};
  out['id'] = `https://${vault.name}.vault.azure.net/secrets/${record.name}${withVersion ? `/${v.version}` : ''}`;
  out['attributes'] = attributes(v);
  if (v.tags !== undefined) out['tags'] = v.tags;
  if (v.contentType !== undefined) out['contentType'] = v.contentType;
  return out;
}

/** DeletedSecretBundle: the latest version without its value, plus the deletion fields. */
function deletedBundle(vault: Vault, d: DeletedRecord): Json {
  return { ...bundle(vault, d.record, d.record.versions.at(-1) as SecretVersion, false), ...deletedFields(vault, d) };
}

function attributes(v: SecretVersion): Json {
  const out: Json = { enabled: v.enabled };
  if (v.nbf !== undefined) out['nbf'] = v.nbf;
  if (v.exp !== undefined) out['exp'] = v.exp;
  out['created'] = v.created;
  out['updated'] = v.updated;
  out['recoveryLevel'] = RECOVERY_LEVEL;
  out['recoverableDays'] = RECOVERABLE_DAYS;
  return out;
}

function deletedFields(vault: Vault, d: DeletedRecord): Json {
  return {
    recoveryId: `https://${vault.name}.vault.azure.net/deletedsecrets/${d.record.name}`,
    deletedDate: d.deletedDate,
    scheduledPurgeDate: d.deletedDate + RECOVERABLE_DAYS * 24 * 3600,
  };
}
