/**
 * The broker's errors. Each subclass is one meaning with a stable `code` and HTTP `status`;
 * `toProblem` (shared/http/problem.ts) turns them into RFC 9457 responses.
 *
 * Messages are shown to callers for 4xx and 503s, so they never contain a secret value, a token
 * or a response body: only names, versions and the reason.
 */

export type ErrorCode =
  | 'InvalidSecretName'
  | 'InvalidVersion'
  | 'InvalidRequest'
  | 'Unauthenticated'
  | 'Forbidden'
  | 'SecretNotFound'
  | 'SecretDisabled'
  | 'TooManySecrets'
  | 'TooManyRequests'
  | 'VaultThrottled'
  | 'VaultUnavailable'
  | 'VaultForbiddenByFirewall'
  | 'VaultAccessDenied'
  | 'RotationNotEnabled'
  | 'SecretNotRotatable';

/** Why a vault call failed, as the health check reports it (CONTRACT.md "cause"). */
export type VaultCause =
  | 'ForbiddenByFirewall'
  | 'ForbiddenByRbac'
  | 'ForbiddenByPolicy'
  | 'SecretNotFound'
  | 'SecretDisabled'
  | 'VaultUnreachable'
  | 'TokenUnavailable'
  | 'Timeout'
  | 'Throttled';

/** Base class: every error the broker raises on purpose. */
export class BrokerError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  /** When the caller may try again (`Retry-After`), where known. */
  readonly retryAfterSeconds: number | undefined;
  constructor(status: number, code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message, options);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** 400: the request is malformed (bad name, bad version, bad body). */
export class InvalidRequestError extends BrokerError {
  constructor(message: string, code: 'InvalidSecretName' | 'InvalidVersion' | 'InvalidRequest' = 'InvalidRequest') {
    super(400, code, message);
  }
}

/** The RFC 6750 (section 3.1) error a `WWW-Authenticate: Bearer` challenge names for a refused bearer credential. */
export interface BearerChallengeError {
  readonly error: 'invalid_request' | 'invalid_token';
  /** The rule that failed, in a few words; never a token or a claim value taken from one. */
  readonly description: string;
}

/** 401: no credential, or one that does not prove an identity. */
export class UnauthenticatedError extends BrokerError {
  /** Set when a bearer credential was refused: what the challenge tells the caller. */
  readonly bearerError: BearerChallengeError | undefined;
  constructor(message: string, options?: { bearerError?: BearerChallengeError }) {
    super(401, 'Unauthenticated', message);
    this.bearerError = options?.bearerError;
  }
}

/** 403: the caller is known but the access policy does not allow this. */
export class ForbiddenError extends BrokerError {
  constructor(message: string) {
    super(403, 'Forbidden', message);
  }
}

/** 413: a batch asks for more secrets than allowed. */
export class TooManySecretsError extends BrokerError {
  constructor(message: string) {
    super(413, 'TooManySecrets', message);
  }
}

/** 429: the caller is over its own rate (`rateLimit` in the access policy), on this instance. */
export class TooManyRequestsError extends BrokerError {
  constructor(message: string, retryAfterSeconds: number) {
    super(429, 'TooManyRequests', message, { retryAfterSeconds });
  }
}

/**
 * 409: the secret cannot be rotated: rotation is off (`RotationNotEnabled`: no
 * `ROTATION_IDENTITY_CLIENT_ID`), or the secret is not tagged for it, its tags are invalid, or
 * `ROTATION_TARGETS` does not list it with the application its tag names (`SecretNotRotatable`).
 */
export class RotationRefusedError extends BrokerError {
  constructor(code: 'RotationNotEnabled' | 'SecretNotRotatable', message: string) {
    super(409, code, message);
  }
}

/** Base of errors that come from talking to a vault; carries the health-check cause. */
export class VaultError extends BrokerError {
  /** The contract's health-check cause for this failure. */
  readonly vaultCause: VaultCause;
  constructor(
    status: number,
    code: ErrorCode,
    cause: VaultCause,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(status, code, message, options);
    this.vaultCause = cause;
  }
}

/** 404: the vault has no such secret (or version). */
export class SecretNotFoundError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(404, 'SecretNotFound', 'SecretNotFound', message, options);
  }
}

/** 409: the secret (version) exists but is disabled in the vault. */
export class SecretDisabledError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(409, 'SecretDisabled', 'SecretDisabled', message, options);
  }
}

/** 429: the vault throttles us. */
export class VaultThrottledError extends VaultError {
  constructor(message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(429, 'VaultThrottled', 'Throttled', message, options);
  }
}

/** 503: the vault cannot be reached, times out, fails, or no token could be had. */
export class VaultUnavailableError extends VaultError {
  constructor(
    message: string,
    cause: 'VaultUnreachable' | 'TokenUnavailable' | 'Timeout' = 'VaultUnreachable',
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(503, 'VaultUnavailable', cause, message, options);
  }
}

/** 503: the vault's firewall refuses the function app. */
export class VaultFirewallError extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(503, 'VaultForbiddenByFirewall', 'ForbiddenByFirewall', message, options);
  }
}

/** 503: the function app's identity lacks permission (RBAC role or access policy). */
export class VaultAccessDeniedError extends VaultError {
  constructor(message: string, cause: 'ForbiddenByRbac' | 'ForbiddenByPolicy', options?: { cause?: unknown }) {
    super(503, 'VaultAccessDenied', cause, message, options);
  }
}

/** A setting is missing or invalid; the message is one line naming the setting. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Normalises anything thrown into an Error without reading bodies or values. */
export function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(typeof err === 'string' ? err : 'Non-error value thrown');
}
