import type { JWTVerifyGetKey } from 'jose';
import { UnauthenticatedError, ForbiddenError } from '../errors';
import type { AccessPolicy, Caller } from './accessPolicy';

/** Clock skew tolerated on `exp` and `nbf`, in seconds. */
export const TOKEN_CLOCK_TOLERANCE_SECONDS = 60;
/** How long a failed OIDC discovery is remembered before it is tried again. */
const DISCOVERY_RETRY_MS = 10_000;
/** The only signature algorithm accepted: Entra ID signs access tokens with RS256. */
const ACCEPTED_ALGORITHMS = ['RS256'];
/** JWS algorithm names (RFC 7518) that may be named back to a caller; anything else in `alg` is not echoed. */
const KNOWN_ALGORITHMS = /^(?:none|EdDSA|ES256K|(?:HS|RS|ES|PS)(?:256|384|512))$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const API_KEY_CHALLENGE = 'ApiKey header="x-api-key"';

/** The headers we read; `Headers` and `@azure/functions`' HttpRequest headers both fit. */
export interface HeaderReader {
  get(name: string): string | null;
}

export interface TokenSettings {
  readonly issuer: string;
  readonly audience: string;
}

/**
 * Proves who a caller is: an Entra ID app-only bearer token or an `x-api-key`. Nothing else.
 *
 * A bearer token must be signed with RS256 by a key from the issuer's OIDC discovery (JWKS), match
 * `iss` and `aud`, be within `exp`/`nbf`, carry `tid` = {@link issuerTenant} of `AUTH_ISSUER`, be
 * app-only (no `scp`; `idtyp` = `app`, or, where `idtyp` is absent, `oid` = `sub`), and, where the
 * caller's policy entry lists `roles`, carry one of them in `roles`. The identity is `azp` (v2) or
 * `appid` (v1). Why delegated tokens are refused: docs/http-api.md, "App-only tokens and app roles".
 */
export class CallerAuthenticator {
  private keys: JWTVerifyGetKey | undefined;
  private discovery: Promise<JWTVerifyGetKey> | undefined;
  private readonly tenantId: string | undefined;

  constructor(
    private readonly policy: AccessPolicy,
    private readonly token: TokenSettings | undefined,
  ) {
    this.tenantId = token ? issuerTenant(token.issuer) : undefined;
  }

  /** The plain `WWW-Authenticate` challenge for 401 answers (no error named). */
  get challenge(): string {
    return this.token ? `Bearer realm="secret-broker", ${API_KEY_CHALLENGE}` : API_KEY_CHALLENGE;
  }

  /**
   * The `WWW-Authenticate` challenge for a 401 caused by `err`: where a bearer credential was
   * refused, the Bearer challenge names the RFC 6750 `error` and, in `error_description`, the rule
   * that failed (e.g. `error="invalid_token", error_description="delegated tokens are not accepted"`).
   */
  challengeFor(err: unknown): string {
    const bearer = err instanceof UnauthenticatedError ? err.bearerError : undefined;
    if (!this.token || !bearer) return this.challenge;
    return (
      `Bearer realm="secret-broker", error="${bearer.error}", ` +
      `error_description="${challengeText(bearer.description)}", ${API_KEY_CHALLENGE}`
    );
  }

  /**
   * The caller of a request that sends only an `x-api-key` that already proved valid (the policy
   * remembers the last few thousand), found without hashing and without waiting; undefined for
   * anything else, which {@link authenticate} must decide (an unknown key is hashed and compared
   * in constant time there).
   */
  knownApiKeyCaller(headers: HeaderReader): Caller | undefined {
    const apiKey = headers.get('x-api-key');
    if (!apiKey || headers.get('authorization') !== null) return undefined;
    return this.policy.knownApiKey(apiKey);
  }

  /**
   * @throws UnauthenticatedError no credential, a bad one (its message and `bearerError` name the
   *   rule that failed), or bearer tokens not configured.
   * @throws ForbiddenError a valid app-only token whose application is not in the access policy.
   */
  async authenticate(headers: HeaderReader): Promise<Caller> {
    const authorization = headers.get('authorization');
    const apiKey = headers.get('x-api-key');
    if (authorization && apiKey) {
      throw new UnauthenticatedError('Send either Authorization: Bearer or x-api-key, not both', {
        bearerError: { error: 'invalid_request', description: 'send either Authorization or x-api-key, not both' },
      });
    }
    if (apiKey !== null) {
      const caller = apiKey ? this.policy.findByApiKey(apiKey) : undefined;
      if (!caller) throw new UnauthenticatedError('The API key is not valid');
      return caller;
    }
    if (authorization) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!match?.[1]) {
        throw new UnauthenticatedError('The Authorization header must be "Bearer <token>"', {
          bearerError: { error: 'invalid_request', description: 'the Authorization header must be Bearer and a token' },
        });
      }
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
        algorithms: ACCEPTED_ALGORITHMS,
        clockTolerance: TOKEN_CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp'],
      }));
    } catch (err: unknown) {
      throw invalidToken(describeJoseError(jose, token, err));
    }
    // Only the signed, verified payload is read from here on.
    if ('scp' in payload) {
      throw invalidToken({ reason: 'delegated (user) tokens are not accepted (scp present)', hint: APP_ONLY_HINT });
    }
    if ('idtyp' in payload && payload.idtyp !== 'app') {
      throw invalidToken({ reason: 'delegated (user) tokens are not accepted (idtyp is not app)', hint: APP_ONLY_HINT });
    }
    // Without idtyp (v1 tokens, v2 ones without the optional claim), Entra's app-only token is the
    // one whose subject is the application's own service principal: oid = sub (and no scp).
    if (!('idtyp' in payload) && (typeof payload.oid !== 'string' || payload.oid !== payload.sub)) {
      throw invalidToken({ reason: 'delegated (user) tokens are not accepted (no idtyp, and oid is not sub)', hint: APP_ONLY_HINT });
    }
    if (typeof payload.tid !== 'string') {
      throw invalidToken({ reason: 'tenant (tid) is missing', hint: 'it must be the tenant in AUTH_ISSUER' });
    }
    if (payload.tid.toLowerCase() !== this.tenantId) throw invalidToken({ reason: 'tenant (tid) does not match AUTH_ISSUER' });
    const appId = typeof payload.azp === 'string' ? payload.azp : typeof payload.appid === 'string' ? payload.appid : undefined;
    if (!appId) throw invalidToken({ reason: 'it names no application (azp or appid claim)' });
    const found = this.policy.findByAppId(appId, typeof payload.oid === 'string' && GUID.test(payload.oid) ? payload.oid : undefined);
    if (!found) {
      // Policy app ids are GUIDs; anything else from the token is not echoed.
      throw new ForbiddenError(`Application ${GUID.test(appId) ? appId : '(not a GUID)'} is not a caller in the access policy`);
    }
    if (found.requiredRoles.length > 0 && !holdsRole(payload.roles, found.requiredRoles)) {
      throw invalidToken({ reason: `it lacks a required app role (one of: ${found.requiredRoles.join(', ')})` });
    }
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
    const url = `${this.token?.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
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

/**
 * The tenant a token's `tid` must name: the first segment of `AUTH_ISSUER`'s path, lower case
 * (`https://login.microsoftonline.com/<tenant>/v2.0`, `https://sts.windows.net/<tenant>/`). Entra
 * puts the tenant's GUID there; with anything else (a domain name, `common`, no path at all) no
 * Entra token's `tid` matches, so every bearer token is refused.
 */
export function issuerTenant(issuer: string): string | undefined {
  try {
    return new URL(issuer).pathname
      .split('/')
      .find((segment) => segment.length > 0)
      ?.toLowerCase();
  } catch {
    return undefined;
  }
}

const APP_ONLY_HINT = 'use an app-only token (client credentials)';

/** Why a bearer token was refused: `reason` names the rule (detail and challenge), `hint` what to do (detail only). */
interface Refusal {
  readonly reason: string;
  readonly hint?: string;
}

function invalidToken({ reason, hint }: Refusal): UnauthenticatedError {
  return new UnauthenticatedError(`The bearer token is not valid: ${reason}${hint ? `; ${hint}` : ''}`, {
    bearerError: { error: 'invalid_token', description: reason },
  });
}

function holdsRole(roles: unknown, required: readonly string[]): boolean {
  return Array.isArray(roles) && roles.some((role) => typeof role === 'string' && required.includes(role));
}

/** RFC 6750 `error_description` allows %x20-21 / %x23-5B / %x5D-7E: printable ASCII without `"` and `\`. */
function challengeText(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
}

function describeJoseError(jose: typeof import('jose'), token: string, err: unknown): Refusal {
  const e = jose.errors;
  if (err instanceof e.JOSEAlgNotAllowed || err instanceof e.JOSENotSupported) {
    return { reason: `algorithm ${headerAlgorithm(jose, token)}is not accepted (RS256 only)` };
  }
  if (err instanceof e.JWTExpired) return { reason: 'expired' };
  if (err instanceof e.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return { reason: 'not yet valid (nbf)' };
    if (err.claim === 'iss') return { reason: 'issuer (iss) does not match AUTH_ISSUER' };
    if (err.claim === 'aud') return { reason: 'audience (aud) does not match AUTH_AUDIENCE' };
    return { reason: `claim ${err.claim} ${err.reason === 'check_failed' ? 'does not match' : err.reason}` };
  }
  if (err instanceof e.JWSSignatureVerificationFailed) return { reason: 'signature does not verify' };
  if (err instanceof e.JWKSNoMatchingKey) return { reason: 'signed by an unknown key' };
  if (err instanceof e.JWSInvalid || err instanceof e.JWTInvalid) return { reason: 'malformed' };
  if (err instanceof e.JWKSTimeout) return { reason: 'signing keys timed out' };
  return { reason: 'rejected' };
}

/** The token's `alg` followed by a space when it is a known JWS algorithm name; otherwise nothing (never echo the token). */
function headerAlgorithm(jose: typeof import('jose'), token: string): string {
  try {
    const { alg } = jose.decodeProtectedHeader(token);
    return typeof alg === 'string' && KNOWN_ALGORITHMS.test(alg) ? `${alg} ` : '';
  } catch {
    return '';
  }
}
