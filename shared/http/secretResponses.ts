import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import { BrokerError } from '../errors';
import type { Resolution, SecretRef } from '../secrets/secretResolver';
import type { SecretMetadata } from '../secrets/vaultGateway';
import { toProblem } from './problem';

/** The contract's resolved secret, fields in the contract's order. */
export function secretBody(r: Resolution): Record<string, unknown> {
  const s = r.secret;
  return {
    name: s.name,
    vault: s.vault,
    version: s.version,
    value: s.value,
    contentType: s.contentType,
    enabled: s.enabled,
    notBefore: s.notBefore,
    expiresOn: s.expiresOn,
    updatedOn: s.updatedOn,
  };
}

/** Everything but the value. */
export function metadataBody(s: SecretMetadata): Record<string, unknown> {
  return {
    name: s.name,
    vault: s.vault,
    version: s.version,
    contentType: s.contentType,
    enabled: s.enabled,
    notBefore: s.notBefore,
    expiresOn: s.expiresOn,
    updatedOn: s.updatedOn,
  };
}

/**
 * A 200 JSON answer about one secret: never stored by caches on the way, tagged with its version,
 * and saying when Key Vault served a secret outside its validity window.
 */
export function secretResponse(r: Resolution, body: Record<string, unknown>): HttpResponseInit {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Cache': r.cache === 'hit' || r.cache === 'coalesced' || r.cache === 'shared' ? 'HIT' : r.cache === 'stale' ? 'STALE' : 'MISS',
  };
  if (r.secret.version) headers.ETag = `"${r.secret.version}"`;
  if (r.validity !== 'valid') headers['X-Secret-Validity'] = r.validity;
  return { status: 200, headers, body: JSON.stringify(body) };
}

/** A JSON answer that holds no value but is still private to the caller. */
export function jsonResponse(body: unknown, status = 200): HttpResponseInit {
  return {
    status,
    headers: { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' },
    body: JSON.stringify(body),
  };
}

/** A batch item's error, with the status and code the single route would have answered. */
export function batchError(name: unknown, vault: string, err: unknown): Record<string, unknown> {
  if (!(err instanceof BrokerError)) throw err;
  const { problem } = toProblem(err);
  return { name, vault, error: { status: problem.status, code: problem.code, detail: problem.detail } };
}

/** The secret a single-secret route names: `{name}` in the path, `?version=` and `?vault=`. */
export function secretRefOf(request: HttpRequest): SecretRef {
  return {
    name: request.params.name ?? '',
    version: request.query.get('version') ?? undefined,
    vault: request.query.get('vault') ?? undefined,
  };
}
