import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload, type KeyLike } from 'jose';
import { sendJson } from './sendJson';

/** Tenant the emulated Entra ID issues for (`tid`, and the issuer's path). */
export const OIDC_TENANT_ID = '7c1f4e2a-93d5-4b86-a0e4-5d2c8b9f1a36';

/** What a token says about the calling application. */
export interface TokenClaims {
  /** The calling application's client id: `azp` (v2 tokens) or `appid` (v1). */
  appId: string;
  /** `aud`: the API's application ID URI or client id. */
  audience: string;
  /** Lifetime from now; negative for an already expired token. Default 3600. */
  expiresInSeconds?: number;
  /** `nbf` relative to now; positive for a token not valid yet. Default 0. */
  notBeforeSeconds?: number;
  /** Which claim carries `appId`: `azp` (v2 access token, the default) or `appid` (v1). */
  claimName?: 'azp' | 'appid';
  /** Extra or overriding claims (e.g. `roles`, `scp`, a different `tid`); a claim set to `undefined` is left out (e.g. `tid`, `idtyp`). */
  extra?: Record<string, unknown>;
}

/** A running local OpenID Connect issuer. */
export interface OidcIssuer {
  /** `iss` of its tokens, Entra v2 style: `http://127.0.0.1:PORT/<tenant>/v2.0` (no trailing slash). */
  issuer: string;
  /** Where its signing keys are published. */
  jwksUri: string;
  /** The tenant id in `tid` and in the issuer's path. */
  tenantId: string;
  /** An RS256 access token signed with the published key. */
  issueToken(claims: TokenClaims): Promise<string>;
  /** The same token, signed with a key that is not published but has the same `kid`. */
  forgeToken(claims: TokenClaims): Promise<string>;
  /** How many times the JWKS was fetched (to check key caching). */
  jwksRequests(): number;
  /** Closes the server and every open connection. */
  stop(): Promise<void>;
}

const DISCOVERY_SUFFIX = '/.well-known/openid-configuration';
const JWKS_PATH = '/discovery/v2.0/keys';

/**
 * Starts a stand-in for Entra ID's OpenID Connect endpoints on http://127.0.0.1:<port>:
 * the discovery document at `{issuer}/.well-known/openid-configuration` (also answered at
 * `/.well-known/openid-configuration` and any other path ending with it) and the JWKS at
 * `/<tenant>/discovery/v2.0/keys`, one RS256 key with a `kid`.
 *
 * Tokens look like Entra access tokens for an application (client credentials): `iss`, `aud`,
 * `azp`+`azpacr` (v2) or `appid`+`appidacr` (v1), `tid`, `oid` = `sub` (stable per application),
 * `idtyp: app`, `iat`, `nbf`, `exp`, `ver`, `uti`.
 */
export async function startOidcIssuer(opts?: { port?: number; tenantId?: string }): Promise<OidcIssuer> {
  const tenantId = opts?.tenantId ?? OIDC_TENANT_ID;
  const kid = createHash('sha256').update(randomUUID()).digest('base64url').slice(0, 27);
  const signing = await generateKeyPair('RS256');
  // Same algorithm and kid, different key: what an attacker who copied the header would sign with.
  const forging = await generateKeyPair('RS256');
  const publicJwk = { ...(await exportJWK(signing.publicKey)), kid, use: 'sig', alg: 'RS256' };
  let jwksCount = 0;

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch {
      sendJsonNoStore(res, 500, { error: 'server_error' });
    }
  });

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname.replace(/\/+$/, '');
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJsonNoStore(res, 405, { error: 'invalid_request' });
    if (path.endsWith(DISCOVERY_SUFFIX)) return sendJsonNoStore(res, 200, discoveryDocument());
    if (path === `/${tenantId}${JWKS_PATH}` || path === JWKS_PATH) {
      jwksCount++;
      return sendJsonNoStore(res, 200, { keys: [publicJwk] });
    }
    return sendJsonNoStore(res, 404, { error: 'not_found' });
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts?.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
  const origin = `http://127.0.0.1:${port}`;
  const issuer = `${origin}/${tenantId}/v2.0`;
  const jwksUri = `${origin}/${tenantId}${JWKS_PATH}`;

  function discoveryDocument(): Record<string, unknown> {
    return {
      issuer,
      jwks_uri: jwksUri,
      authorization_endpoint: `${origin}/${tenantId}/oauth2/v2.0/authorize`,
      token_endpoint: `${origin}/${tenantId}/oauth2/v2.0/token`,
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'azp', 'appid', 'oid', 'tid', 'ver'],
      tenant_region_scope: 'EU',
    };
  }

  function sign(claims: TokenClaims, key: KeyLike): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const v1 = claims.claimName === 'appid';
    const principal = guidFrom(`principal:${tenantId}:${claims.appId}`);
    const payload: JWTPayload = {
      aud: claims.audience,
      iss: issuer,
      iat: now,
      nbf: now + (claims.notBeforeSeconds ?? 0),
      exp: now + (claims.expiresInSeconds ?? 3600),
      ...(v1 ? { appid: claims.appId, appidacr: '1' } : { azp: claims.appId, azpacr: '1' }),
      idtyp: 'app',
      oid: principal,
      sub: principal,
      tid: tenantId,
      uti: randomUUID().replace(/-/g, '').slice(0, 22),
      ver: v1 ? '1.0' : '2.0',
      ...claims.extra,
    };
    for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
    return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).sign(key);
  }

  return {
    issuer,
    jwksUri,
    tenantId,
    issueToken: (claims) => sign(claims, signing.privateKey),
    forgeToken: (claims) => sign(claims, forging.privateKey),
    jwksRequests: () => jwksCount,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A repeatable GUID-shaped id derived from `seed`. */
function guidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function sendJsonNoStore(res: ServerResponse, status: number, body: unknown): void {
  sendJson(res, status, body, { 'Cache-Control': 'no-store' });
}
