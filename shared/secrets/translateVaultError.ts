import {
  SecretDisabledError,
  SecretNotFoundError,
  VaultAccessDeniedError,
  VaultFirewallError,
  VaultThrottledError,
  VaultError,
  VaultUnavailableError,
} from '../errors';

/** Network failures that mean "the vault could not be reached". */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
  'REQUEST_SEND_ERROR',
  'UND_ERR_SOCKET',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The identity library's error names for "no token could be had". */
const TOKEN_ERRORS = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
  'AuthenticationRequiredError',
]);

interface RestErrorLike {
  name?: unknown;
  code?: unknown;
  statusCode?: unknown;
  details?: unknown;
  response?: { headers?: { get?(name: string): string | undefined }; bodyAsText?: string | null };
}

/**
 * Translates what `@azure/keyvault-secrets` / `@azure/identity` throw into the broker's errors.
 * This is the only place that reads foreign errors; our own errors pass through untouched.
 * Messages name the vault and secret, never a response body.
 */
export function translateVaultError(err: unknown, where: { vault: string; name?: string }): VaultError {
  if (err instanceof VaultError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as RestErrorLike;
  const name = typeof e.name === 'string' ? e.name : '';
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const inner = innerErrorCode(e) ?? innerFromMessage(err);
  const what = where.name ? `secret "${where.name}" in vault "${where.vault}"` : `vault "${where.vault}"`;

  if (TOKEN_ERRORS.has(name)) {
    return new VaultUnavailableError(
      `No access token for vault "${where.vault}" could be had from the function app's identity`,
      'TokenUnavailable',
      { cause: err },
    );
  }
  if (name === 'AbortError' || code === 'ABORT_ERR' || name === 'TimeoutError') {
    return new VaultUnavailableError(`Vault "${where.vault}" did not answer in time`, 'Timeout', { cause: err });
  }
  switch (status) {
    case 404:
      return new SecretNotFoundError(`No ${what}`, { cause: err });
    case 403:
      if (inner === 'SecretDisabled' || /disabled/i.test(code ?? '')) {
        return new SecretDisabledError(`The ${what} is disabled`, { cause: err });
      }
      if (inner === 'ForbiddenByFirewall') {
        return new VaultFirewallError(`Vault "${where.vault}" refuses the function app: its firewall does not allow this client address`, {
          cause: err,
        });
      }
      if (inner === 'ForbiddenByPolicy' || inner === 'AccessDenied') {
        return new VaultAccessDeniedError(
          `The function app's identity lacks Get/List in the access policy of vault "${where.vault}"`,
          'ForbiddenByPolicy',
          { cause: err },
        );
      }
      return new VaultAccessDeniedError(
        `The function app's identity has no role that allows reading secrets in vault "${where.vault}"`,
        'ForbiddenByRbac',
        { cause: err },
      );
    case 401:
      return new VaultUnavailableError(`Vault "${where.vault}" did not accept the function app's token`, 'TokenUnavailable', {
        cause: err,
      });
    case 429:
      return new VaultThrottledError(`Vault "${where.vault}" is throttling requests`, { cause: err, retryAfterSeconds: retryAfter(e) });
    case undefined:
      break;
    default:
      if (status >= 500) {
        return new VaultUnavailableError(`Vault "${where.vault}" failed (HTTP ${status})`, 'VaultUnreachable', {
          cause: err,
          retryAfterSeconds: retryAfter(e),
        });
      }
      return new VaultUnavailableError(`Vault "${where.vault}" refused the request (HTTP ${status})`, 'VaultUnreachable', { cause: err });
  }
  if (code && NETWORK_CODES.has(code)) {
    return new VaultUnavailableError(`Vault "${where.vault}" could not be reached (${code})`, 'VaultUnreachable', { cause: err });
  }
  return new VaultUnavailableError(`Vault "${where.vault}" could not be reached`, 'VaultUnreachable', { cause: err });
}

/**
 * Whether asking again later may succeed: throttling (429), a failing vault (5xx), a timeout or a
 * network failure. A definite answer (404, 403, another 4xx) and a missing token are not.
 */
export function isTransientVaultError(err: VaultError): boolean {
  if (err instanceof VaultThrottledError) return true;
  if (!(err instanceof VaultUnavailableError)) return false;
  if (err.vaultCause === 'Timeout') return true;
  if (err.vaultCause !== 'VaultUnreachable') return false;
  const status = (err.cause as RestErrorLike | undefined)?.statusCode;
  return typeof status !== 'number' || status >= 500;
}

/**
 * Whether a 403 says nothing about why (the SDK's paging errors carry neither body nor details):
 * the caller may then find the reason another way.
 */
export function isUnexplainedForbidden(err: unknown): boolean {
  const e = (typeof err === 'object' && err !== null ? err : {}) as RestErrorLike;
  return e.statusCode === 403 && innerErrorCode(e) === undefined && innerFromMessage(err) === undefined;
}

/**
 * Errors thrown while paging (listing) carry neither the body nor `details`, only Key Vault's own
 * message: its wording for each 403 is stable, so it stands in for the inner code there. The
 * message is only matched, never passed on.
 */
function innerFromMessage(err: unknown): string | undefined {
  const message =
    err instanceof Error
      ? err.message
      : typeof (err as { message?: unknown } | null)?.message === 'string'
        ? String((err as { message: string }).message)
        : '';
  if (/Client address is not authorized and caller is not a trusted service/i.test(message)) return 'ForbiddenByFirewall';
  if (/does not have secrets? \w+ permission on key vault/i.test(message)) return 'ForbiddenByPolicy';
  if (/not allowed on a disabled secret/i.test(message)) return 'SecretDisabled';
  if (/Caller is not authorized to perform action on resource/i.test(message)) return 'ForbiddenByRbac';
  return undefined;
}

/** Key Vault puts the precise reason of a 403 in `error.innererror.code`. */
function innerErrorCode(e: RestErrorLike): string | undefined {
  const fromDetails = pickInner(e.details);
  if (fromDetails) return fromDetails;
  const text = e.response?.bodyAsText;
  if (!text) return undefined;
  try {
    return pickInner(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** The SDK's parsed `details` spell it `innerError`; the wire body spells it `innererror`. */
function pickInner(body: unknown): string | undefined {
  type Inner = { code?: unknown };
  const error = (body as { error?: { innererror?: Inner; innerError?: Inner } } | undefined)?.error;
  const code = (error?.innerError ?? error?.innererror)?.code;
  return typeof code === 'string' ? code : undefined;
}

function retryAfter(e: RestErrorLike): number | undefined {
  const raw = e.response?.headers?.get?.('retry-after');
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
