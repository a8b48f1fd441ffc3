import type { HttpHandler, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { Caller } from '../callers/accessPolicy';
import { UnauthenticatedError } from '../errors';
import type { Runtime } from '../runtime';
import { getRuntime } from '../runtime';
import { problemResponse, toProblem } from './problem';

/** A handler that runs after the caller is authenticated. */
export type CallerHandler = (
  request: HttpRequest,
  context: InvocationContext,
  runtime: Runtime,
  caller: Caller,
) => Promise<HttpResponseInit>;
/** A handler that needs no caller. */
export type AnonymousHandler = (request: HttpRequest, context: InvocationContext, runtime: Runtime) => Promise<HttpResponseInit>;

/** Headers every answer carries. */
const BASE_HEADERS = { 'X-Content-Type-Options': 'nosniff' } as const;

/**
 * Wraps a handler with authentication, error-to-problem translation and request telemetry.
 * A refused credential is audited like a refused secret.
 */
export function withCaller(handler: CallerHandler): HttpHandler {
  return pipeline(async (request, context, runtime) => {
    let caller: Caller;
    try {
      caller = await runtime.authenticator.authenticate(request.headers);
    } catch (err: unknown) {
      const status = err instanceof UnauthenticatedError ? 401 : 403;
      context.log(`audit authenticate caller=unknown status=${status} route=${routeOf(request, context)}`);
      runtime.telemetry.trackEvent('SecretAccessDenied', {
        operation: 'authenticate',
        caller: 'unknown',
        route: routeOf(request, context),
        status,
        outcome: 'denied',
      });
      throw err;
    }
    return handler(request, context, runtime, caller);
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
      const { problem, headers, internal } = toProblem(err, new URL(request.url).pathname);
      if (internal) {
        // The error itself goes to the host's log and telemetry; the caller sees only the id.
        context.error(`errorId=${problem.errorId ?? ''}`, err);
        runtime?.telemetry.trackException(err, { errorId: problem.errorId ?? '', function: context.functionName });
      }
      if (problem.status === 401 && runtime) headers['WWW-Authenticate'] = runtime.authenticator.challenge;
      response = problemResponse(problem, headers);
    }
    response = { ...response, headers: { ...BASE_HEADERS, ...(response.headers as Record<string, string> | undefined) } };
    if (runtime?.telemetry.enabled) {
      runtime.telemetry.trackRequest({
        name: `${request.method} /api/${routeOf(request, context)}`,
        url: stripQuery(request.url),
        durationMs: performance.now() - started,
        resultCode: response.status ?? 200,
        success: (response.status ?? 200) < 500,
        properties: { function: context.functionName, invocationId: context.invocationId },
      });
    }
    return response;
  };
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
