import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { jwtVerify } from 'jose';
import { EMULATOR_RESOURCE_GROUP, EMULATOR_SUBSCRIPTION_ID } from './keyVaultTypes';
import { EMULATOR_ISSUER, EMULATOR_TENANT_ID } from './managedIdentityEndpoint';
import { sendJson as writeJson } from './sendJson';
import { readBody } from './requestBody';

/** The management endpoint the real SDK clients use; the CONNECT proxy routes it here. */
export const ARM_ENDPOINT = 'https://management.azure.com';

/** A JSON object as ARM sends and receives it. */
export type Json = Record<string, unknown>;

/**
 * An ARM error: `{"error":{"code","message"}}` with `status` and extra headers, or the body a
 * resource provider answers in a shape of its own (`body`, e.g. {@link webRpError}).
 */
export class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly body?: Json,
  ) {
    super(message);
  }
}

/**
 * The App Service (Microsoft.Web) resource provider's own error body, capitalised, not ARM's
 * `{error: {...}}`: `{Code, Message, Target, Details: [{Message}, {Code}, {ErrorEntity:
 * {ExtendedCode, MessageTemplate, Parameters, Code, Message}}], Innererror}`. Source: public error
 * reports of Flex Consumption site creation (e.g. Azure/azure-dev and Azure/bicep issues quoting
 * "for Flex Consumption sites is invalid").
 */
export function webRpError(
  status: number,
  code: string,
  message: string,
  extendedCode: string,
  template: string,
  parameters: string[],
): ArmError {
  return new ArmError(
    status,
    code,
    message,
    {},
    {
      Code: code,
      Message: message,
      Target: null,
      Details: [
        { Message: message },
        { Code: code },
        { ErrorEntity: { ExtendedCode: extendedCode, MessageTemplate: template, Parameters: parameters, Code: code, Message: message } },
      ],
      Innererror: null,
    },
  );
}

/** What a route answers; the pipeline adds ARM's service headers. */
export interface ArmAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** The authenticated caller: the token's object id. */
export interface Caller {
  oid: string;
}

/** One authenticated ARM request, as the routes see it. */
export interface ArmRequest {
  method: string;
  /** Normalised path without the query string. */
  path: string;
  segments: string[];
  query: URLSearchParams;
  apiVersion: string;
  caller: Caller;
  /** The parsed JSON body (PUT, PATCH, POST), if any. */
  body: Json | undefined;
}

/** ARM accepts tokens for either of its historical resource URIs, with or without the slash. */
export const ARM_AUDIENCES = [
  ARM_ENDPOINT,
  `${ARM_ENDPOINT}/`,
  'https://management.core.windows.net',
  'https://management.core.windows.net/',
];

export function subscriptionId(): string {
  return `/subscriptions/${EMULATOR_SUBSCRIPTION_ID}`;
}

/** The resource group the emulated vaults live in (`local`). */
export function resourceGroupId(): string {
  return `${subscriptionId()}/resourceGroups/${EMULATOR_RESOURCE_GROUP}`;
}

/** True when `ancestor` is `scope` or one of its parents, on whole path segments, case-insensitively. */
export function isAncestorOrSelf(ancestor: string, scope: string): boolean {
  const a = ancestor.toLowerCase();
  const s = scope.toLowerCase();
  return s === a || s.startsWith(`${a}/`);
}

export function normalisePath(path: string): string {
  // The authorization SDK joins "/{scope}" with a scope that starts with "/" itself: ARM tolerates the "//".
  const collapsed = path.replace(/\/{2,}/g, '/');
  return collapsed.length > 1 ? collapsed.replace(/\/+$/, '') : collapsed;
}

export function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Path segments, decoded, without empty ones. */
export function segmentsOf(path: string): string[] {
  return path
    .split('/')
    .filter((s) => s !== '')
    .map(safeDecode);
}

/** A GUID derived from `seed`: stable across runs for the same seed, distinct for different ones. */
export function guidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value[key]` when it is an object, else an empty object. */
export function objectAt(value: unknown, key: string): Json {
  if (!isJson(value)) return {};
  const inner = value[key];
  return isJson(inner) ? inner : {};
}

export function stringAt(value: unknown, key: string): string | undefined {
  if (!isJson(value)) return undefined;
  const inner = value[key];
  return typeof inner === 'string' ? inner : undefined;
}

/** A deep copy of JSON data, so stored state never aliases what a caller holds. */
export function cloneJson<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** ARM's 404 for a missing resource, in the wording ARM uses. */
export function resourceNotFound(type: string, name: string, resourceGroup: string): ArmError {
  return new ArmError(
    404,
    'ResourceNotFound',
    `The Resource '${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

export function methodNotAllowed(req: { method: string; path: string }): ArmError {
  return new ArmError(405, 'MethodNotAllowed', `The ARM emulator does not serve ${req.method} on '${req.path}'.`);
}

export function resourceGroupNotFound(name: string): ArmError {
  return new ArmError(404, 'ResourceGroupNotFound', `Resource group '${name}' could not be found.`);
}

export function unauthorized(code: string, message: string, description: string): ArmError {
  // authorization_uri names the tenant, which is how ARM clients discover a subscription's tenant.
  return new ArmError(401, code, message, {
    'WWW-Authenticate': `Bearer authorization_uri="https://login.windows.net/${EMULATOR_TENANT_ID}", error="invalid_token", error_description="${description}"`,
  });
}

/** Verifies an ARM bearer token (HS256 from the managed-identity emulator); rejects with ARM's 401. */
export async function authenticateArm(authorization: string | undefined, key: Uint8Array): Promise<Caller> {
  const match = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization) : null;
  const token = match?.[1];
  if (!token) {
    throw unauthorized(
      'AuthenticationFailed',
      "Authentication failed. The 'Authorization' header is missing.",
      "The authentication failed because of missing 'Authorization' header.",
    );
  }
  try {
    const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], issuer: EMULATOR_ISSUER, audience: ARM_AUDIENCES });
    return { oid: typeof payload['oid'] === 'string' ? payload['oid'] : (payload.sub ?? '') };
  } catch (err) {
    const code = (err as { code?: string }).code;
    const claim = (err as { claim?: string }).claim;
    if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim === 'aud') {
      throw unauthorized(
        'InvalidAuthenticationTokenAudience',
        `The access token has been obtained for wrong audience or resource '${audienceOf(token)}'. It should exactly match with one of the allowed audiences '${ARM_AUDIENCES.join("','")}'.`,
        'The access token has been obtained from wrong audience or resource.',
      );
    }
    if (code === 'ERR_JWT_EXPIRED') {
      throw unauthorized(
        'ExpiredAuthenticationToken',
        'The access token expiry UTC time is earlier than current UTC time.',
        'The access token has expired.',
      );
    }
    throw unauthorized('InvalidAuthenticationToken', 'The access token is invalid.', 'The access token is invalid.');
  }
}

/** The unverified `aud` of a JWT, for the error message only. */
function audienceOf(token: string): string {
  try {
    const { aud } = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { aud?: unknown };
    if (typeof aud === 'string') return aud;
    return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string').join(',') : '';
  } catch {
    return '';
  }
}

/** ARM's limit on a request body. */
const MAX_ARM_BODY_BYTES = 4 * 1024 * 1024;

/** Reads a request body up to `limit` bytes; larger bodies are ARM's 413. */
export async function readArmBody(req: IncomingMessage, limit = MAX_ARM_BODY_BYTES): Promise<Buffer> {
  const body = await readBody(req, limit);
  if (body === undefined)
    throw new ArmError(413, 'RequestEntityTooLarge', `The request content length exceeds the limit of ${limit} bytes.`);
  return body;
}

/** Parses a JSON request body; an empty one is `undefined`. */
export function parseJsonBody(raw: Buffer): Json | undefined {
  if (raw.length === 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ArmError(
      400,
      'InvalidRequestContent',
      `The request content was invalid and could not be deserialized: '${(err as Error).message}'.`,
    );
  }
  if (!isJson(parsed)) throw new ArmError(400, 'InvalidRequestContent', 'The request content must be a JSON object.');
  return parsed;
}

export function armHeaders(method: string): Record<string, string> {
  const id = randomUUID();
  const write = method !== 'GET' && method !== 'HEAD';
  return {
    'Cache-Control': 'no-cache',
    Pragma: 'no-cache',
    'x-ms-request-id': id,
    'x-ms-correlation-request-id': id,
    'x-ms-routing-request-id': `LOCAL:${new Date().toISOString().replace(/[-:.]/g, '')}:${id}`,
    [write ? 'x-ms-ratelimit-remaining-subscription-writes' : 'x-ms-ratelimit-remaining-subscription-reads']: write ? '1199' : '11999',
    'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
  };
}

export function sendAnswer(res: ServerResponse, method: string, answer: ArmAnswer): void {
  if (res.headersSent || res.destroyed) return;
  const headers = { ...armHeaders(method), ...answer.headers };
  if (answer.body === undefined) {
    res.writeHead(answer.status, { ...headers, 'Content-Length': '0' });
    res.end();
    return;
  }
  writeJson(res, answer.status, answer.body, headers);
}

export function sendArmError(res: ServerResponse, method: string, err: unknown): void {
  const armError = err instanceof ArmError ? err : new ArmError(500, 'InternalServerError', String(err));
  sendAnswer(res, method, {
    status: armError.status,
    body: armError.body ?? { error: { code: armError.code, message: armError.message } },
    headers: armError.headers,
  });
}

/** ARM's display names of the regions the emulator is likely to see; App Service answers with these. */
const REGION_DISPLAY_NAMES: Record<string, string> = {
  westeurope: 'West Europe',
  northeurope: 'North Europe',
  swedencentral: 'Sweden Central',
  uksouth: 'UK South',
  francecentral: 'France Central',
  germanywestcentral: 'Germany West Central',
  eastus: 'East US',
  eastus2: 'East US 2',
  westus2: 'West US 2',
  westus3: 'West US 3',
  centralus: 'Central US',
  australiaeast: 'Australia East',
  southeastasia: 'Southeast Asia',
};

/** `West Europe` for `westeurope` (App Service's form); unknown regions are answered as given. */
export function regionDisplayName(location: string): string {
  return REGION_DISPLAY_NAMES[location.replace(/\s+/g, '').toLowerCase()] ?? location;
}

/** `westeurope` for `West Europe` (ARM's canonical form). */
export function regionName(location: string): string {
  return location.replace(/\s+/g, '').toLowerCase();
}
