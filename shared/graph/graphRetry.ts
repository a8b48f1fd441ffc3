/**
 * When a Microsoft Graph request is tried again, as a retry strategy for `@azure/core-rest-pipeline`'s
 * `retryPolicy`. It replaces the pipeline's `defaultRetryPolicy`, which does almost the same but
 * never retries a 429 that carries no `Retry-After` (its throttling strategy needs the header, its
 * exponential strategy only takes 408 and 5xx).
 *
 * - 429 and 503 with `Retry-After` (seconds or an HTTP date): wait that long, as Graph's throttling
 *   guidance asks; a wait longer than `maxRetryAfterMs` is not waited for: the caller gets the 429 with
 *   its `retryAfterMs` and can come back later.
 * - 429 without `Retry-After`: exponential backoff (Graph's throttling guidance for that case).
 * - 408 and 5xx except 501 and 505, and connection failures: exponential backoff with jitter, the
 *   pipeline's own formula (`retryDelayInMs * 2^attempt`, capped, then half of it plus a random half).
 *
 * A request that is not idempotent (addPassword: a 5xx or a dropped connection may come after Graph
 * added the password) is retried on 429 only, which Graph sends for a request it did not process;
 * anything else goes back to the caller, which looks for its password by display name before adding
 * another (the rotation does).
 */
import type { RetryStrategy } from '@azure/core-rest-pipeline';

export interface GraphRetryOptions {
  /** Retries after the first attempt (default 3, the pipeline's default). */
  maxRetries?: number;
  /** First backoff step (default 1000 ms, the pipeline's default). */
  retryDelayInMs?: number;
  /** Backoff cap (default 32 s). */
  maxRetryDelayInMs?: number;
  /** The longest `Retry-After` waited for (default 60 s). */
  maxRetryAfterMs?: number;
}

/** Whether a request may be sent again after an answer that leaves its effect unknown (a 5xx, a dropped connection). */
export type Idempotence = 'idempotent' | 'notIdempotent';

export const DEFAULT_GRAPH_RETRY: Required<GraphRetryOptions> = {
  maxRetries: 3,
  retryDelayInMs: 1_000,
  maxRetryDelayInMs: 32_000,
  maxRetryAfterMs: 60_000,
};

/** Errors of the connection itself, which a new attempt may not meet (the pipeline's list). */
const SYSTEM_ERRORS = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'ENOTFOUND']);

/** One attempt's outcome, as the retry decision sees it. */
export interface AttemptOutcome {
  /** 0 for the first retry decision. */
  retryCount: number;
  status?: number;
  /** The `Retry-After` header as sent, if any. */
  retryAfter?: string;
  /** `code` of the error thrown instead of a response (e.g. `ECONNRESET`). */
  errorCode?: string;
}

/**
 * `Retry-After` in milliseconds for a 429 or 503: delta-seconds or an HTTP date (RFC 9110 §10.2.3),
 * or undefined when absent, unreadable, or on another status.
 */
export function retryAfterMs(status: number | undefined, header: string | undefined, now = Date.now()): number | undefined {
  if ((status !== 429 && status !== 503) || header === undefined) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/** How long to wait before the next attempt, or undefined when the outcome is final. */
export function graphRetryDelay(
  outcome: AttemptOutcome,
  options: GraphRetryOptions = {},
  random: () => number = Math.random,
  idempotence: Idempotence = 'idempotent',
): number | undefined {
  const o = { ...DEFAULT_GRAPH_RETRY, ...options };
  if (idempotence === 'notIdempotent' && outcome.status !== 429) return undefined;
  const told = retryAfterMs(outcome.status, outcome.retryAfter);
  if (told !== undefined) return told <= o.maxRetryAfterMs ? told : undefined;
  const status = outcome.status;
  const retriable =
    status === undefined
      ? outcome.errorCode !== undefined && SYSTEM_ERRORS.has(outcome.errorCode)
      : status === 429 || status === 408 || (status >= 500 && status !== 501 && status !== 505);
  if (!retriable) return undefined;
  const clamped = Math.min(o.maxRetryDelayInMs, o.retryDelayInMs * 2 ** outcome.retryCount);
  return clamped / 2 + Math.floor(random() * (clamped / 2 + 1));
}

/** The strategy for `retryPolicy([graphRetryStrategy(options)], { maxRetries })`. */
export function graphRetryStrategy(options: GraphRetryOptions = {}, idempotence: Idempotence = 'idempotent'): RetryStrategy {
  return {
    name: 'graphRetryStrategy',
    retry({ retryCount, response, responseError }) {
      const delay = graphRetryDelay(
        {
          retryCount,
          status: response?.status,
          retryAfter: response?.headers.get('retry-after'),
          errorCode: response ? undefined : responseError?.code,
        },
        options,
        Math.random,
        idempotence,
      );
      return delay === undefined ? { skipStrategy: true } : { retryAfterInMs: delay };
    },
  };
}
