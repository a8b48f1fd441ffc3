// HTTP plumbing of the Key Vault emulator: reading a request (path, host, JSON body) and answering
// with the service's headers and error body.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { HttpError } from './keyVaultErrors';
import { sendJson as writeJson } from './sendJson';
import { readBody } from './requestBody';

export type Json = Record<string, unknown>;

const MAX_BODY_BYTES = 1024 * 1024;

/** Reads a JSON object body (undefined when empty). @throws HttpError 413 past 1 MiB, 400 when not a JSON object. */
export async function readJson(req: IncomingMessage): Promise<Json | undefined> {
  const body = await readBody(req, MAX_BODY_BYTES);
  if (body === undefined) throw new HttpError(413, 'RequestTooLarge', 'The request body is too large.');
  if (body.length === 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'BadParameter', 'The request body is not valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, 'BadParameter', 'The request body must be a JSON object.');
  }
  return parsed as Json;
}

/** The headers Key Vault puts on every answer. */
function baseHeaders(): Record<string, string> {
  return {
    'Cache-Control': 'no-cache',
    'x-ms-request-id': randomUUID(),
    'x-ms-keyvault-region': 'local',
    'x-ms-keyvault-service-version': '1.9.0.0-emulator',
    'x-ms-keyvault-network-info': 'conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;',
    'Strict-Transport-Security': 'max-age=31536000;includeSubDomains',
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void {
  writeJson(res, status, body, { ...baseHeaders(), ...extra });
}

/** 204 with the service headers and no body. */
export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204, baseHeaders());
  res.end();
}

export function sendError(res: ServerResponse, err: HttpError, extra?: Record<string, string>): void {
  const error: Json = { code: err.code, message: err.message };
  if (err.inner !== undefined) error['innererror'] = { code: err.inner };
  sendJson(res, err.status, { error }, extra);
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function normalisePath(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.replace(/\/+$/, '') || '/' : path;
}

/** The lower-cased `{vault}` of a `{vault}.vault.azure.net[:port]` Host header. */
export function vaultFromHost(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const m = /^([a-z0-9-]+)\.vault\.azure\.net(?::\d+)?$/i.exec(host);
  return m?.[1]?.toLowerCase();
}

export function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function resetSocket(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}
