import { randomUUID } from 'node:crypto';
import type { HttpResponseInit } from '@azure/functions';
import { BrokerError } from '../errors';

/** Base of the `type` URIs of our problems (a URN: stable, and not pretending to be a page); the code is appended. */
export const PROBLEM_TYPE_BASE = 'urn:secret-broker:problem:';

/** An RFC 9457 problem document with the contract's stable `code`. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly instance?: string;
  readonly errorId?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthenticated',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  409: 'Conflict',
  413: 'Too many secrets',
  429: 'Too many requests',
  500: 'Internal error',
  503: 'Vault unavailable',
};

/**
 * Turns any error into a problem. Our own errors show their message (they are written to be
 * shown); anything else becomes a generic 500 with an `errorId` to find it in telemetry.
 */
export function toProblem(err: unknown, instance?: string): { problem: Problem; headers: Record<string, string>; internal: boolean } {
  if (err instanceof BrokerError) {
    const headers: Record<string, string> = {};
    if (err.retryAfterSeconds !== undefined) {
      headers['Retry-After'] = String(err.retryAfterSeconds);
    } else if (err.status === 429 || err.status === 503) {
      headers['Retry-After'] = err.status === 429 ? '10' : '30';
    }
    return {
      problem: {
        type: PROBLEM_TYPE_BASE + err.code,
        title: (err.code === 'VaultThrottled' ? 'Vault throttled' : TITLES[err.status]) ?? 'Error',
        status: err.status,
        code: err.code,
        detail: err.message,
        ...(instance ? { instance } : {}),
      },
      headers,
      internal: false,
    };
  }
  const errorId = randomUUID();
  return {
    problem: {
      type: PROBLEM_TYPE_BASE + 'InternalError',
      title: TITLES[500] ?? 'Internal error',
      status: 500,
      code: 'InternalError',
      detail: `Something went wrong; quote error id ${errorId}`,
      errorId,
      ...(instance ? { instance } : {}),
    },
    headers: {},
    internal: true,
  };
}

/** A problem as an HTTP answer. */
export function problemResponse(problem: Problem, headers: Record<string, string> = {}): HttpResponseInit {
  return {
    status: problem.status,
    headers: { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', ...headers },
    body: JSON.stringify(problem),
  };
}

/**
 * 405 for a known route asked with another method (CONTRACT.md): a problem with code
 * `MethodNotAllowed` and the `Allow` header listing the methods the route serves.
 */
export function methodNotAllowedResponse(method: string, allow: readonly string[]): HttpResponseInit {
  const code = 'MethodNotAllowed';
  return problemResponse(
    {
      type: PROBLEM_TYPE_BASE + code,
      title: TITLES[405] ?? 'Method not allowed',
      status: 405,
      code,
      detail: `${method} is not allowed here`,
    },
    { Allow: allow.join(', '), 'X-Content-Type-Options': 'nosniff' },
  );
}
