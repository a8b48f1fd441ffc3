// Routes an authorised Key Vault request to the handler of its REST operation and answers with
// what the handler returns (or the HttpError it throws).
import type { ServerResponse } from 'node:http';
import { HttpError, methodNotAllowed, routeNotFound } from './keyVaultErrors';
import { type Json, safeDecode, sendError, sendJson, sendNoContent } from './keyVaultHttp';
import {
  type NewVersionListener,
  type SecretRequest,
  backupSecret,
  checkName,
  deleteSecret,
  getDeletedSecret,
  getSecret,
  listDeletedSecrets,
  listSecretVersions,
  listSecrets,
  purgeDeletedSecret,
  recoverDeletedSecret,
  restoreSecret,
  setSecret,
  updateSecret,
} from './keyVaultSecretHandlers';
import type { Vault } from './keyVaultStore';

const API_VERSION_RE = /^(\d+\.\d+|\d{4}-\d{2}-\d{2})(-preview(\.\d+)?)?$/;

/** Checks the api-version, runs the operation `method` + `path` names and answers it. */
export function dispatch(
  res: ServerResponse,
  vault: Vault,
  method: string,
  path: string,
  query: URLSearchParams,
  body: Json | undefined,
  onNewVersion: NewVersionListener,
): void {
  try {
    const apiVersion = query.get('api-version');
    if (!apiVersion) throw new HttpError(400, 'BadParameter', "The 'api-version' query parameter is missing.");
    if (!API_VERSION_RE.test(apiVersion)) {
      throw new HttpError(
        400,
        'BadParameter',
        `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`,
      );
    }
    const req: SecretRequest = { vault, query, apiVersion, path };
    const result = route(req, method, path.split('/').slice(1).map(safeDecode), body, onNewVersion);
    if (result === null) {
      sendNoContent(res);
    } else {
      sendJson(res, 200, result);
    }
  } catch (err) {
    sendError(res, err instanceof HttpError ? err : new HttpError(500, 'InternalServerError', String(err)));
  }
}

function route(req: SecretRequest, method: string, seg: string[], body: Json | undefined, onNewVersion: NewVersionListener): Json | null {
  const [collection, name, third, fourth] = seg;
  const vault = req.vault;
  if (collection === 'secrets') {
    if (name === undefined) return expectMethod(method, 'GET') && listSecrets(req);
    if (name === 'restore' && method === 'POST') return restoreSecret();
    checkName(name);
    if (third === undefined) {
      if (method === 'GET') return getSecret(vault, name, '');
      if (method === 'PUT') return setSecret(vault, name, body, onNewVersion);
      if (method === 'DELETE') return deleteSecret(vault, name);
      if (method === 'PATCH') return updateSecret(vault, name, '', body);
      throw methodNotAllowed(method);
    }
    if (fourth !== undefined) throw routeNotFound(req.path);
    if (third === 'versions') return expectMethod(method, 'GET') && listSecretVersions(req, name);
    if (third === 'backup' && method === 'POST') return backupSecret();
    if (method === 'GET') return getSecret(vault, name, third);
    if (method === 'PATCH') return updateSecret(vault, name, third, body);
    throw methodNotAllowed(method);
  }
  if (collection === 'deletedsecrets') {
    if (name === undefined) return expectMethod(method, 'GET') && listDeletedSecrets(req);
    checkName(name);
    if (third === 'recover' && fourth === undefined) return expectMethod(method, 'POST') && recoverDeletedSecret(vault, name);
    if (third !== undefined) throw routeNotFound(req.path);
    if (method === 'GET') return getDeletedSecret(vault, name);
    if (method === 'DELETE') return purgeDeletedSecret(vault, name);
    throw methodNotAllowed(method);
  }
  throw routeNotFound(req.path);
}

function expectMethod(method: string, expected: string): true {
  if (method !== expected) throw methodNotAllowed(method);
  return true;
}
