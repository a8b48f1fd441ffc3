import { isIP } from 'node:net';
import type { Caller } from '../callers/accessPolicy';

/**
 * What a record is about. `batch` is a batch request as a whole (its items are `resolve`);
 * `refusals` sums up the refused requests of one client address that were answered 429 past the
 * refusal limit (shared/http/refusalLimiter.ts) and written no record of their own.
 */
export type AuditOperation = 'resolve' | 'metadata' | 'list' | 'batch' | 'health' | 'adoption' | 'rotate' | 'refusals';

/** How a request ended for the caller. */
export type AuditOutcome = 'allowed' | 'denied' | 'failed';

/** Stands for a value that did not pass validation; `<` is in no valid name, alias or version. */
export const INVALID = '<invalid>';

/**
 * One audit record (docs/security.md, "What is logged: the audit trail"): one per access or refusal, one per batch item. Every
 * field is always present in the log line (null where it does not apply; a telemetry event leaves
 * nulls out), and every string field holds a value that passed validation or came from the
 * settings: never raw request input, never a secret value.
 */
export interface AuditRecord {
  readonly time: string;
  readonly operation: AuditOperation;
  /** The caller's name from the access policy; null when the request was not authenticated. */
  readonly caller: string | null;
  readonly authMethod: Caller['method'] | null;
  /** Bearer: the application (client) id and the service principal's object id. */
  readonly appId: string | null;
  readonly objectId: string | null;
  /** API key: the first 12 hex digits of the key's SHA-256. */
  readonly keyId: string | null;
  /**
   * The client's address as the front end passed it (last `X-Forwarded-For` hop), when it is an IP
   * address; in a `refusals` record, the refusal limit's key: the address, or an IPv6 /64 (`2001:db8:1:2::/64`).
   */
  readonly clientAddress: string | null;
  /** The caller's `x-ms-client-request-id` / `x-request-id`, when it is a plain token of up to 64 characters. */
  readonly requestId: string | null;
  readonly invocationId: string | null;
  /** W3C trace id of the invocation (Application Insights `operation_Id`), when the host passed one. */
  readonly operationId: string | null;
  /** Position in a batch (0-based); null outside a batch. */
  readonly item: number | null;
  /** Vault alias, `*` for a listing, or `<invalid>`. */
  readonly vault: string | null;
  readonly vaultLength: number | null;
  /** Secret name, `*` for a listing, or `<invalid>` (then `secretLength` says how long the input was). */
  readonly secret: string | null;
  readonly secretLength: number | null;
  /** The version served, or asked for, `latest`, or `<invalid>`. */
  readonly version: string | null;
  readonly versionLength: number | null;
  readonly outcome: AuditOutcome;
  readonly status: number;
  readonly code: string;
  /** `hit`, `shared` (the fleet's shared cache), `miss`, `coalesced`, `stale`, `negative` (a cached "not found") or `none`. */
  readonly cache: string;
  /** `valid`, `expired`, `not-yet-valid`, or null when nothing was served. */
  readonly validity: string | null;
  /** How long the access took, in ms; for `refusals`, the length of the window that starts at `time`. */
  readonly durationMs: number;
  /** `refusals` only: how many refused requests of `clientAddress` in that window went unrecorded; else null. */
  readonly suppressed: number | null;
}

/** Where a request came from, read once per request from validated headers and the invocation. */
export interface AuditOrigin {
  readonly clientAddress: string | null;
  readonly requestId: string | null;
  readonly invocationId: string | null;
  readonly operationId: string | null;
}

/** What the code that served (or refused) an access knows about it. */
export interface AuditEntry {
  readonly operation: AuditOperation;
  readonly item?: number;
  /** As the request gave them; checked here. */
  readonly vault?: unknown;
  readonly secret?: unknown;
  readonly version?: unknown;
  readonly status: number;
  readonly code: string;
  readonly cache?: string;
  readonly validity?: string;
  readonly durationMs: number;
}

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const SECRET_VERSION = /^[0-9a-fA-F]{32}$/;
const VAULT_ALIAS = /^[A-Za-z0-9_-]{1,63}$/;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const IPV4_WITH_PORT = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?::\d{1,5})?$/;
const TRACE_PARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;
const CACHE_STATES = new Set(['hit', 'shared', 'miss', 'coalesced', 'stale', 'negative', 'none']);
const VALIDITIES = new Set(['valid', 'expired', 'not-yet-valid']);

/** A request field as it may be recorded: the value when `valid`, else `<invalid>` with its length. */
function checked(value: unknown, valid: (s: string) => boolean, absent: string | null): [string | null, number | null] {
  if (value === undefined || value === null) return [absent, null];
  if (typeof value === 'string' && valid(value)) return [value, null];
  return [INVALID, typeof value === 'string' ? value.length : null];
}

/** The last `X-Forwarded-For` read and its client address: one front end sends the same text for a client's requests. */
let lastForwardedFor: string | null = null;
let lastClientAddress: string | null = null;

/** The request's origin: client address, request id and trace id, each only when it validates. */
export function auditOrigin(
  headers: { get(name: string): string | null },
  invocation: { invocationId?: string; traceParent?: string | null },
): AuditOrigin {
  const forwardedFor = headers.get('x-forwarded-for');
  if (forwardedFor !== lastForwardedFor) {
    lastClientAddress = clientAddressOf(forwardedFor);
    lastForwardedFor = forwardedFor;
  }
  return {
    clientAddress: lastClientAddress,
    requestId: validOrNull(headers.get('x-ms-client-request-id') ?? headers.get('x-request-id'), REQUEST_ID),
    invocationId: validOrNull(invocation.invocationId ?? null, REQUEST_ID),
    operationId: TRACE_PARENT.exec(invocation.traceParent ?? '')?.[1] ?? null,
  };
}

/**
 * The client address from `X-Forwarded-For`: the front end appends the address it saw, so the
 * last hop is the one it vouches for (earlier hops are whatever the client sent). A port is
 * dropped; anything that is not an IP address is not recorded.
 */
export function clientAddressOf(forwardedFor: string | null): string | null {
  const last = forwardedFor?.split(',').pop()?.trim();
  if (!last) return null;
  // The common case, an IPv4 address with or without a port, without the general parser.
  const v4 = IPV4_WITH_PORT.exec(last);
  if (v4?.[1]) return isIP(v4[1]) === 4 ? v4[1] : null;
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(last);
  const candidates = bracketed?.[1] ? [bracketed[1]] : [last, last.replace(/:\d{1,5}$/, '')];
  return candidates.find((c) => isIP(c) !== 0) ?? null;
}

function validOrNull(value: string | null, pattern: RegExp): string | null {
  return value !== null && pattern.test(value) ? value : null;
}

/** Builds a record from validated parts only. */
export function buildAuditRecord(origin: AuditOrigin, caller: Caller | undefined, entry: AuditEntry, now: Date = new Date()): AuditRecord {
  const isList = entry.operation === 'list';
  const [vault, vaultLength] = isList ? ['*', null] : checked(entry.vault, (s) => VAULT_ALIAS.test(s), null);
  const [secret, secretLength] = isList ? ['*', null] : checked(entry.secret, (s) => SECRET_NAME.test(s), null);
  const [version, versionLength] = checked(entry.version, (s) => s === 'latest' || SECRET_VERSION.test(s), null);
  return {
    time: now.toISOString(),
    operation: entry.operation,
    caller: caller?.name ?? null,
    authMethod: caller?.method ?? null,
    appId: caller?.appId ?? null,
    objectId: caller?.objectId ?? null,
    keyId: caller?.keyId ?? null,
    ...origin,
    item: entry.item ?? null,
    vault,
    vaultLength,
    secret,
    secretLength,
    version,
    versionLength,
    outcome: entry.status < 400 ? 'allowed' : entry.status === 401 || entry.status === 403 ? 'denied' : 'failed',
    status: entry.status,
    code: /^[A-Za-z]{1,40}$/.test(entry.code) ? entry.code : 'InternalError',
    cache: entry.cache !== undefined && CACHE_STATES.has(entry.cache) ? entry.cache : 'none',
    validity: entry.validity !== undefined && VALIDITIES.has(entry.validity) ? entry.validity : null,
    durationMs: Math.round(entry.durationMs * 10) / 10,
    suppressed: null,
  };
}

/**
 * The one record that stands for the refusals (401 / 403) of one client address that were
 * answered 429 past the refusal limit, in the window from `windowStart` (epoch ms) lasting
 * `windowMs`: `time` is the window's start, `durationMs` its length, `suppressed` the count;
 * `outcome` is `denied` (each was a refusal), `status` / `code` what they were answered.
 */
export function buildRefusalsRecord(clientAddress: string | null, windowStart: number, windowMs: number, suppressed: number): AuditRecord {
  return {
    time: new Date(windowStart).toISOString(),
    operation: 'refusals',
    caller: null,
    authMethod: null,
    appId: null,
    objectId: null,
    keyId: null,
    clientAddress,
    requestId: null,
    invocationId: null,
    operationId: null,
    item: null,
    vault: null,
    vaultLength: null,
    secret: null,
    secretLength: null,
    version: null,
    versionLength: null,
    outcome: 'denied',
    status: 429,
    code: 'TooManyRequests',
    cache: 'none',
    validity: null,
    durationMs: Math.round(windowMs),
    suppressed,
  };
}
