import type { HttpHandler, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { AuditOperation } from '../audit/auditRecord';
import { auditOrigin } from '../audit/auditRecord';
import type { AuditRecorder } from '../audit/auditTrail';
import { AuditTrail, auditSink } from '../audit/auditTrail';
import type { Caller } from '../callers/accessPolicy';
import { DEFAULT_VAULT_ALIAS } from '../config';
import { BrokerError, TooManyRequestsError } from '../errors';
import type { Runtime } from '../runtime';
import { getRuntime } from '../runtime';
import { problemResponse, toProblem } from './problem';
import { secretRefOf } from './secretResponses';

/** What a caller's request carries through its handler. */
export interface CallerScope {
  readonly caller: Caller;
  /** The request's audit trail: one record per access (per item in a batch). */
  readonly audit: AuditRecorder;
  /**
   * Charges `items` requests to the caller's rate; for handlers registered with `chargePerItem`.
   * @throws TooManyRequestsError
   */
  readonly charge: (items: number) => void;
}

/** A handler that runs after the caller is authenticated. */
export type CallerHandler = (
  request: HttpRequest,
  context: InvocationContext,
  runtime: Runtime,
  scope: CallerScope,
) => Promise<HttpResponseInit>;
/** A handler that needs no caller. */
export type AnonymousHandler = (request: HttpRequest, context: InvocationContext, runtime: Runtime) => Promise<HttpResponseInit>;

export interface CallerRouteOptions {
  /** What the route's audit records call the access. */
  readonly operation: AuditOperation;
  /**
   * The handler charges the caller's rate itself, per item (a batch); otherwise each request costs
   * one. A request it refuses 400 / 413 before charging (a malformed or too large body) costs one.
   */
  readonly chargePerItem?: boolean;
}

/** Headers every answer carries. */
export const BASE_HEADERS = { 'X-Content-Type-Options': 'nosniff' } as const;

/**
 * Wraps a handler with authentication, the caller's rate, the audit trail, error-to-problem
 * translation and request telemetry. Every request leaves at least one audit record: the
 * handler's (one per access), or else one for the request itself (refused credential, rate,
 * malformed body). A refused request (401 / 403) counts against its client address's refusal
 * limit (refusalLimiter.ts); past it, it is answered 429 and its record is dropped (the address's
 * `refusals` record counts it). Nothing of that runs for a request that is not refused.
 *
 * With `chargePerItem`, a request the handler refuses 400 or 413 before it charged anything (the
 * body could not be read as a batch) still costs the caller one request of its rate, so malformed
 * batches are not free; when the caller has none left, it is answered 429 instead.
 */
export function withCaller(options: CallerRouteOptions, handler: CallerHandler): HttpHandler {
  return pipeline(async (request, context, runtime) => {
    const started = performance.now();
    const trail = new AuditTrail(
      auditOrigin(request.headers, { invocationId: context.invocationId, traceParent: context.traceContext?.traceParent }),
      auditSink(runtime.telemetry),
    );
    let status = 500;
    let code = 'InternalError';
    let suppressed = false;
    let charged = false;
    try {
      const caller = await runtime.authenticator.authenticate(request.headers);
      trail.caller = caller;
      if (!options.chargePerItem) runtime.quota.take(caller, 1);
      const response = await handler(request, context, runtime, {
        caller,
        audit: trail,
        charge: (items) => {
          charged = true;
          runtime.quota.take(caller, items);
        },
      });
      status = response.status ?? 200;
      code = status < 400 ? 'OK' : 'Error';
      return response;
    } catch (err: unknown) {
      if (err instanceof BrokerError) ({ status, code } = err);
      if (options.chargePerItem && !charged && trail.caller && (status === 400 || status === 413)) {
        charged = true;
        try {
          runtime.quota.take(trail.caller, 1);
        } catch (overRate: unknown) {
          if (overRate instanceof BrokerError) ({ status, code } = overRate);
          throw overRate;
        }
      }
      if (status === 401 || status === 403) {
        const retryAfter = runtime.refusals.refuse(trail.clientAddress);
        if (retryAfter > 0) {
          suppressed = true;
          throw new TooManyRequestsError(
            `Too many refused requests from this client address (more than ${runtime.refusals.limit} in ${runtime.refusals.windowMs / 1000} s); retry after ${retryAfter} s`,
            retryAfter,
          );
        }
      }
      throw err;
    } finally {
      if (!suppressed && trail.count === 0) {
        const versioned = options.operation === 'resolve' || options.operation === 'metadata';
        const ref = versioned || options.operation === 'adoption' || options.operation === 'rotate' ? secretRefOf(request) : undefined;
        trail.record({
          operation: options.operation,
          ...(ref
            ? { secret: ref.name, vault: ref.vault ?? DEFAULT_VAULT_ALIAS, ...(versioned ? { version: ref.version ?? 'latest' } : {}) }
            : {}),
          status,
          code,
          durationMs: performance.now() - started,
        });
      }
      trail.settle(suppressed);
    }
  });
}

/** Wraps a handler that needs no caller with error translation and request telemetry. */
export function anonymous(handler: AnonymousHandler): HttpHandler {
  return pipeline(handler);
}

function pipeline(handler: AnonymousHandler): HttpHandler {
  return async (request, context) => {
    const started = performance.now();
    let response: HttpResponseInit;
    let runtime: Runtime | undefined;
    try {
      runtime = getRuntime();
      response = await handler(request, context, runtime);
    } catch (err: unknown) {
      response = problemAnswer(err, request, context, runtime);
    }
    response = withBaseHeaders(response);
    trackRequest(runtime, request, context, started, response);
    return response;
  };
}

/** The answer as sent: {@link BASE_HEADERS} first, then the handler's own. */
export function withBaseHeaders(response: HttpResponseInit): HttpResponseInit {
  return { ...response, headers: { ...BASE_HEADERS, ...(response.headers as Record<string, string> | undefined) } };
}

/**
 * The problem answer for an error a handler threw (before {@link withBaseHeaders}); an internal
 * error goes to the host's log and telemetry with its id, and the caller sees only the id.
 */
export function problemAnswer(
  err: unknown,
  request: HttpRequest,
  context: InvocationContext,
  runtime: Runtime | undefined,
): HttpResponseInit {
  const { problem, headers, internal } = toProblem(err, new URL(request.url).pathname);
  if (internal) {
    context.error(`errorId=${problem.errorId ?? ''}`, err);
    runtime?.telemetry.trackException(err, { errorId: problem.errorId ?? '', function: context.functionName });
  }
  if (problem.status === 401 && runtime) headers['WWW-Authenticate'] = runtime.authenticator.challengeFor(err);
  return problemResponse(problem, headers);
}

/** The request telemetry the host needs (when telemetry is on): one request item per answer, `started` from `performance.now()`. */
export function trackRequest(
  runtime: Runtime | undefined,
  request: HttpRequest,
  context: InvocationContext,
  started: number,
  response: HttpResponseInit,
): void {
  if (!runtime?.telemetry.enabled) return;
  runtime.telemetry.trackRequest({
    name: `${request.method} /api/${routeOf(request, context)}`,
    url: stripQuery(request.url),
    durationMs: performance.now() - started,
    resultCode: response.status ?? 200,
    success: (response.status ?? 200) < 500,
    properties: { function: context.functionName, invocationId: context.invocationId },
  });
}

/** The route template (`secrets/{name}`), not the concrete path, so telemetry groups requests. */
function routeOf(request: HttpRequest, context: InvocationContext): string {
  const route = (context.options.trigger as { route?: unknown } | undefined)?.route;
  return typeof route === 'string' ? route : new URL(request.url).pathname.replace(/^\/api\//, '');
}

function stripQuery(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}
