// The Microsoft Graph emulator's error type, the refusals it answers with Graph's codes and messages,
// and Graph's error body. Sources are cited beside each rule (see docs/azure-fidelity.md).
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { sendJson } from './sendJson';

/** An error answered as Graph's error body: HTTP status, `error.code`, `error.message`, optional extra fields. */
export class GraphHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Fields Graph adds to `error` (e.g. `details`) or to `innerError` (throttling's `code`, `status`, `message`). */
    readonly extra: { details?: Array<{ target: string; code: string }>; inner?: Record<string, string> } = {},
    /** Response headers, e.g. `Retry-After`. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Answers `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
 * Learn: "Microsoft Graph error responses and resource types" (error resource type: code, message, innerError);
 * innerError's `date`, `request-id`, `client-request-id` as public reports show them (microsoft-graph-docs-contrib#2331, #8774).
 * `date` has no fraction and no zone, as in those reports.
 */
export function sendGraphError(res: ServerResponse, err: GraphHttpError, ids: { requestId: string; clientRequestId: string }): void {
  const innerError = {
    ...err.extra.inner,
    date: new Date().toISOString().slice(0, 19),
    'request-id': ids.requestId,
    'client-request-id': ids.clientRequestId,
  };
  const error: Record<string, unknown> = { code: err.code, message: err.message };
  if (err.extra.details) error['details'] = err.extra.details;
  error['innerError'] = innerError;
  sendJson(res, err.status, { error }, { ...err.headers, 'request-id': ids.requestId, 'client-request-id': ids.clientRequestId });
}

/** Ids of one request: Graph answers `request-id` and echoes `client-request-id` (or repeats the request id). */
// Learn: "Microsoft Graph best practices" / "error responses" (client-request-id, request-id headers); echo behaviour from public reports where both are equal.
export function requestIds(clientRequestId: string | string[] | undefined): { requestId: string; clientRequestId: string } {
  const requestId = randomUUID();
  const given = Array.isArray(clientRequestId) ? clientRequestId[0] : clientRequestId;
  return { requestId, clientRequestId: given && given.length <= 100 ? given : requestId };
}

// ---------------------------------------------------------------- authentication (401)

/** Public reports (e.g. microsoft-graph-docs#16208): 401 `InvalidAuthenticationToken`. */
const INVALID_TOKEN = 'InvalidAuthenticationToken';

// Public reports of Graph answering a request without a bearer token; wording not verified here.
export const tokenMissing = (): GraphHttpError => new GraphHttpError(401, INVALID_TOKEN, 'Access token is empty.');
// Public report microsoft-graph-docs#16208 / microsoft-graph-docs-contrib#2362: token for another resource.
export const tokenAudienceInvalid = (): GraphHttpError =>
  new GraphHttpError(401, INVALID_TOKEN, 'Access token validation failure. Invalid audience.');
// Unsourced: modelled on Graph's wording for expired tokens seen in public reports; not verified here.
export const tokenExpired = (): GraphHttpError =>
  new GraphHttpError(401, INVALID_TOKEN, 'Lifetime validation failed, the token is expired.');
// Unsourced: the message for a token whose signature or issuer fails is modelled.
export const tokenInvalid = (): GraphHttpError => new GraphHttpError(401, INVALID_TOKEN, 'Access token validation failure.');

// ---------------------------------------------------------------- authorisation and resources

/**
 * Public reports microsoft-graph-docs#6139, microsoft-graph-docs-contrib#2331 and #8774: 403
 * `Authorization_RequestDenied`, "Insufficient privileges to complete the operation."
 */
export const insufficientPrivileges = (): GraphHttpError =>
  new GraphHttpError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');

/**
 * Public reports microsoft-graph-docs-contrib#6431 and microsoft-graph-docs#3539 (`GET /applications/{id}`):
 * 404 `Request_ResourceNotFound`, "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
 */
export const applicationNotFound = (id: string): GraphHttpError =>
  new GraphHttpError(
    404,
    'Request_ResourceNotFound',
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
  );

/**
 * removePassword with a keyId the application does not hold: 400 (issue 17 and public reports of
 * removePassword failing for an absent password, e.g. hashicorp/terraform-provider-azuread#661).
 */
// Unsourced: the code `Request_BadRequest` (the directory's bad-request code in public reports) and this message are modelled; the exact body was not found.
export const passwordNotFound = (keyId: string): GraphHttpError =>
  new GraphHttpError(400, 'Request_BadRequest', `No password credential found with keyId '${keyId}'.`);

/**
 * Public report Azure/azure-cli#12946: addPassword over an application's password limit answers 400
 * `TooManyAppPasswords`, "Not allowed to add 3 passwords. You can only add a maximum of 2 passwords.",
 * with `details: [{target: 'passwordCredentials', code: 'TooManyAppPasswords'}]`.
 */
export const tooManyPasswords = (attempted: number, max: number): GraphHttpError =>
  new GraphHttpError(
    400,
    'TooManyAppPasswords',
    `Not allowed to add ${attempted} passwords. You can only add a maximum of ${max} passwords.`,
    { details: [{ target: 'passwordCredentials', code: 'TooManyAppPasswords' }] },
  );

// Unsourced: modelled on Graph's answer for a malformed directory object id ("Invalid object identifier"); not verified here.
export const invalidObjectId = (id: string): GraphHttpError =>
  new GraphHttpError(400, 'Request_BadRequest', `Invalid object identifier '${id}'.`);

// Unsourced: the code and message for a body that is not JSON or a keyId that is not a GUID are modelled.
export const badRequestBody = (what: string): GraphHttpError => new GraphHttpError(400, 'BadRequest', what);

// Unsourced: modelled on Graph's "Resource not found for the segment" answer for an unknown path.
export const segmentNotFound = (segment: string): GraphHttpError =>
  new GraphHttpError(400, 'BadRequest', `Resource not found for the segment '${segment}'.`);

// Unsourced: the code for a method the resource does not take is modelled (Learn's errors page lists 405 without a code).
export const methodNotAllowed = (): GraphHttpError =>
  new GraphHttpError(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.');

// ---------------------------------------------------------------- throttling and outages

/**
 * Learn: "Microsoft Graph throttling guidance" (example response): 429 with `Retry-After` and
 * `{"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"code":"429","message":"Please retry after","status":"429",…}}}`.
 */
export const throttled = (retryAfterSeconds: number): GraphHttpError =>
  new GraphHttpError(
    429,
    'TooManyRequests',
    'Please retry again later.',
    { inner: { code: '429', message: 'Please retry after', status: '429' } },
    { 'Retry-After': String(retryAfterSeconds) },
  );

/**
 * Learn: "Microsoft Graph error responses and resource types": 503 "The service is temporarily down for
 * maintenance or is overloaded. You may repeat the request after a delay, the length of which may be
 * specified in a Retry-After header."; code `serviceNotAvailable` from that page's code table. Other 5xx
 * statuses use `generalError` (same table). Messages are modelled.
 */
export function serviceFault(status: number, retryAfterSeconds?: number): GraphHttpError {
  const headers: Record<string, string> = retryAfterSeconds === undefined ? {} : { 'Retry-After': String(retryAfterSeconds) };
  if (status === 503) return new GraphHttpError(503, 'serviceNotAvailable', 'The service is temporarily unavailable.', {}, headers);
  return new GraphHttpError(status, 'generalError', 'An unspecified error has occurred.', {}, headers);
}
