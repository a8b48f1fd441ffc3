import type { JWTVerifyGetKey } from 'jose';
import { UnauthenticatedError, ForbiddenError } from '../errors';
import type { AccessPolicy, Caller } from './accessPolicy';

/** Clock skew tolerated on `exp` and `nbf`, in seconds. */
export const TOKEN_CLOCK_TOLERANCE_SECONDS = 60;
/** How long a failed OIDC discovery is remembered before it is tried again. */
const DISCOVERY_RETRY_MS = 10_000;

/** The headers we read; `Headers` and `@azure/functions`' HttpRequest headers both fit. */
export interface HeaderReader {
  get(name: string): string | null;
}

export interface TokenSettings {
  readonly issuer: string;
  readonly audience: string;
}

/**
 * Proves who a caller is: an Entra ID bearer token (signature via the issuer's OIDC discovery and
 * JWKS; `iss`, `aud`, `exp`, `nbf`; identity = `azp` or `appid`) or an `x-api-key`. Nothing else.
 */
export class CallerAuthenticator {
  private keys: JWTVerifyGetKey | undefined;
  private discovery: Promise<JWTVerifyGetKey> | undefined;

  constructor(
    private readonly policy: AccessPolicy,
    private readonly token: TokenSettings | undefined,
  ) {}

  /** The `WWW-Authenticate` challenge for 401 answers. */
  get challenge(): string {
    return this.token ? 'Bearer realm="secret-broker", ApiKey header="x-api-key"' : 'ApiKey header="x-api-key"';
  }

  /**
   * @throws UnauthenticatedError no credential, a bad one, or bearer tokens not configured.
   * @throws ForbiddenError a valid token whose application is not in the access policy.
   */
  async authenticate(headers: HeaderReader): Promise<Caller> {
    const authorization = headers.get('authorization');
    const apiKey = headers.get('x-api-key');
    if (authorization && apiKey) {
      throw new UnauthenticatedError('Send either Authorization: Bearer or x-api-key, not both');
    }
    if (apiKey !== null) {
      const caller = apiKey ? this.policy.findByApiKey(apiKey) : undefined;
      if (!caller) throw new UnauthenticatedError('The API key is not valid');
      return caller;
    }
    if (authorization) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!match?.[1]) throw new UnauthenticatedError('The Authorization header must be "Bearer <token>"');
      return this.fromToken(match[1]);
    }
    throw new UnauthenticatedError('Authenticate with Authorization: Bearer <Entra ID token> or x-api-key');
  }

  private async fromToken(token: string): Promise<Caller> {
    if (!this.token) {
      throw new UnauthenticatedError('Bearer tokens are not accepted here (AUTH_ISSUER is not set); use x-api-key');
    }
    const keys = await this.signingKeys();
    const jose = loadJose();
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jose.jwtVerify(token, keys, {
        issuer: this.token.issuer,
        audience: this.token.audience,
        clockTolerance: TOKEN_CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp'],
      }));
    } catch (err: unknown) {
      throw new UnauthenticatedError(`The bearer token is not valid: ${describeJoseError(jose.errors, err)}`);
    }
    const appId = typeof payload.azp === 'string' ? payload.azp : typeof payload.appid === 'string' ? payload.appid : undefined;
    if (!appId) throw new UnauthenticatedError('The bearer token names no application (azp or appid claim)');
    const found = this.policy.findByAppId(appId, typeof payload.oid === 'string' ? payload.oid : undefined);
    if (!found) throw new ForbiddenError(`Application ${appId} is not a caller in the access policy`);
    return found.caller;
  }

  private async signingKeys(): Promise<JWTVerifyGetKey> {
    if (this.keys) return this.keys;
    this.discovery ??= this.discover().then(
      (keys) => (this.keys = keys),
      (err: unknown) => {
        setTimeout(() => (this.discovery = undefined), DISCOVERY_RETRY_MS).unref();
        throw err;
      },
    );
    return this.discovery;
  }

  private async discover(): Promise<JWTVerifyGetKey> {
    const url = `${this.token?.issuer}/.well-known/openid-configuration`;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const doc = (await response.json()) as { jwks_uri?: unknown };
      if (typeof doc.jwks_uri !== 'string') throw new Error('no jwks_uri');
      return loadJose().createRemoteJWKSet(new URL(doc.jwks_uri), { timeoutDuration: 10_000 });
    } catch (err: unknown) {
      throw new UnauthenticatedError(
        `The token issuer's signing keys could not be fetched (${err instanceof Error ? err.message : 'error'}); try again shortly`,
      );
    }
  }
}

/** jose is loaded on the first bearer token, so API-key-only apps never pay for it at cold start. */
function loadJose(): typeof import('jose') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  return require('jose') as typeof import('jose');
}

function describeJoseError(joseErrors: typeof import('jose').errors, err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'not yet valid (nbf)';
    return `claim "${err.claim}" ${err.reason === 'check_failed' ? 'does not match' : err.reason}`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature does not verify';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'signed by an unknown key';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed';
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) return 'unsupported algorithm';
  if (err instanceof joseErrors.JWKSTimeout) return 'signing keys timed out';
  return 'rejected';
}
