import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { sendJson } from './sendJson';

/** Tenant the emulated identity lives in; the Key Vault emulator names it in its challenge. */
export const EMULATOR_TENANT_ID = '5f3e6c1a-6b1e-4c52-9a39-0d1c6b7e2a10';
/** Object id (`oid`/`sub`) of the emulated system-assigned identity. */
export const EMULATOR_PRINCIPAL_ID = 'b7a1d5e2-3c4f-4e8a-9d6b-2f1e0c9a8b71';
/** Client (application) id of the emulated system-assigned identity. */
export const EMULATOR_CLIENT_ID = '0d4c2f8e-6a1b-4f3d-8e5c-7b9a1c2d3e4f';
/** Issuer the tokens carry, in the v1 form App Service tokens use. */
// Unsourced: the v1 issuer form (https://sts.windows.net/{tenant}/) is modelled from App Service tokens, not verified here.
export const EMULATOR_ISSUER = `https://sts.windows.net/${EMULATOR_TENANT_ID}/`;

/** App Service's MSI protocol version, the only one this endpoint speaks (as msal-node sends it). */
// Learn: "How to use managed identities for App Service and Azure Functions" (REST protocol, api-version 2019-08-01)
const API_VERSION = '2019-08-01';
const TOKEN_PATH = '/msi/token';
// Unsourced: a one-hour lifetime is modelled; Entra's actual lifetimes vary.
const TOKEN_LIFETIME_SECONDS = 3600;

/** A running emulated App Service managed-identity endpoint. */
export interface ManagedIdentityEndpoint {
  /** Value for IDENTITY_ENDPOINT, e.g. `http://127.0.0.1:PORT/msi/token`. */
  endpoint: string;
  /** Value for IDENTITY_HEADER; requests must echo it in `X-IDENTITY-HEADER`. */
  header: string;
  /** How many requests reached the token path (successful or not). */
  tokenRequests(): number;
  /**
   * Registers a user-assigned identity: token requests with `client_id=<clientId>` (as
   * `ManagedIdentityCredential` sends for `AZURE_CLIENT_ID`) get tokens with `oid`/`sub` =
   * `principalId`. Returns the identity.
   */
  addUserAssignedIdentity(clientId: string, principalId: string): { clientId: string; principalId: string };
  /**
   * Grants app roles (application permissions, e.g. Graph's `Application.ReadWrite.OwnedBy`) to an identity
   * for one resource: its tokens for that resource carry them in the `roles` claim. An empty list revokes them.
   */
  setAppRoles(principalId: string, resource: string, roles: string[]): void;
  /** Makes every token request fail with `status` until called with `null`. */
  setFailure(f: null | { status: number }): void;
  /** Closes the server and every open connection. */
  stop(): Promise<void>;
}

/** Encodes a string secret the same way on both the issuing and the verifying side. */
export function tokenSecretBytes(secret: Uint8Array | string): Uint8Array {
  return typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
}

/**
 * Starts the App Service managed-identity endpoint (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`,
 * API version 2019-08-01) on 127.0.0.1 over plain HTTP, as `ManagedIdentityCredential`
 * (via msal-node) calls it: `GET {endpoint}?api-version=2019-08-01&resource=<resource>`
 * plus `client_id` / `object_id` / `mi_res_id` for user-assigned identities.
 *
 * Tokens are HS256 JWTs signed with `tokenSecret`, audience = the requested resource,
 * valid for one hour.
 */
export async function startManagedIdentityEndpoint(opts: {
  tokenSecret: Uint8Array | string;
  port?: number;
  /** User-assigned identities to serve by client id (see {@link ManagedIdentityEndpoint.addUserAssignedIdentity}). */
  userAssigned?: Array<{ clientId: string; principalId: string }>;
}): Promise<ManagedIdentityEndpoint> {
  const key = tokenSecretBytes(opts.tokenSecret);
  const userAssigned = new Map<string, { clientId: string; principalId: string }>();
  for (const identity of opts.userAssigned ?? []) userAssigned.set(identity.clientId.toLowerCase(), { ...identity });
  const header = randomBytes(16).toString('hex');
  /** App roles by `principalId resource` (both normalised by {@link appRoleKey}). */
  const appRoles = new Map<string, string[]>();
  let requests = 0;
  let failure: null | { status: number } = null;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      sendError(res, 500, `Emulator error: ${String(err)}`);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname.replace(/\/+$/, '').toLowerCase() !== TOKEN_PATH) {
      return sendError(res, 404, 'Not found.');
    }
    requests++;
    if (req.method !== 'GET') return sendError(res, 405, 'Method not allowed.');
    const presented = req.headers['x-identity-header'];
    // Learn: "How to use managed identities for App Service and Azure Functions" (X-IDENTITY-HEADER); refusal statuses/messages unsourced
    if (presented === undefined) return sendError(res, 400, 'Missing X-IDENTITY-HEADER header.');
    if (presented !== header) return sendError(res, 401, 'Unauthorized: X-IDENTITY-HEADER value is invalid.');
    if (failure) return sendError(res, failure.status, `Emulated managed identity failure (HTTP ${failure.status}).`);

    const params = url.searchParams;
    // Unsourced: refusing other api-versions is modelled (the page also documents 2017-09-01); message not verified.
    if (params.get('api-version') !== API_VERSION) {
      return sendError(res, 400, `Invalid or missing api-version; expected ${API_VERSION}.`);
    }
    const resource = params.get('resource');
    // Learn: "How to use managed identities for App Service and Azure Functions" (resource is a required query parameter); message unsourced
    if (!resource) return sendError(res, 400, "Required query parameter 'resource' is missing.");

    const registered = userAssigned.get((params.get('client_id') ?? '').toLowerCase());
    const identity = registered ?? resolveIdentity(params);
    const now = Math.floor(Date.now() / 1000);
    const expiresOn = now + TOKEN_LIFETIME_SECONDS;
    const roles = appRoles.get(appRoleKey(identity.principalId, resource));
    const accessToken = await new SignJWT({
      appid: identity.clientId,
      azp: identity.clientId,
      oid: identity.principalId,
      tid: EMULATOR_TENANT_ID,
      idtyp: 'app',
      ver: '1.0',
      // Learn: "Access tokens in the Microsoft identity platform" (roles: the app roles, i.e. application permissions, granted for the resource)
      ...(roles && roles.length > 0 ? { roles } : {}),
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(EMULATOR_ISSUER)
      .setSubject(identity.principalId)
      .setAudience(resource)
      .setIssuedAt(now)
      // Unsourced: the five-minute nbf backdating is modelled from observed Entra tokens.
      .setNotBefore(now - 300) // Entra backdates nbf by five minutes
      .setExpirationTime(expiresOn)
      .setJti(randomUUID())
      .sign(key);
    // Learn: "How to use managed identities for App Service and Azure Functions" (200: access_token, expires_on as epoch-seconds string, resource, token_type, client_id)
    sendJson(res, 200, {
      access_token: accessToken,
      // App Service returns epoch seconds as a string; msal-node converts it.
      expires_on: String(expiresOn),
      resource,
      token_type: 'Bearer',
      client_id: identity.clientId,
    });
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });

  return {
    endpoint: `http://127.0.0.1:${port}${TOKEN_PATH}`,
    header,
    tokenRequests: () => requests,
    addUserAssignedIdentity(clientId, principalId) {
      const identity = { clientId, principalId };
      userAssigned.set(clientId.toLowerCase(), identity);
      return { ...identity };
    },
    setAppRoles(principalId, resource, roles) {
      if (roles.length === 0) appRoles.delete(appRoleKey(principalId, resource));
      else appRoles.set(appRoleKey(principalId, resource), [...roles]);
    },
    setFailure(f) {
      failure = f;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Maps the user-assigned selectors msal-node may send for an unregistered identity to a stable one. */
// Learn: "How to use managed identities for App Service and Azure Functions" (client_id, principal_id/object_id or mi_res_id pick a user-assigned identity)
function resolveIdentity(params: URLSearchParams): { clientId: string; principalId: string } {
  const selector = params.get('client_id') ?? params.get('object_id') ?? params.get('principal_id') ?? params.get('mi_res_id');
  if (!selector) return { clientId: EMULATOR_CLIENT_ID, principalId: EMULATOR_PRINCIPAL_ID };
  // Derive ids from the selector so each user-assigned identity is distinct but repeatable.
  const clientId = params.get('client_id') ?? guidFrom(`client:${selector}`);
  const principalId = params.get('object_id') ?? params.get('principal_id') ?? guidFrom(`principal:${selector}`);
  return { clientId, principalId };
}

/** One key per identity and resource; `https://graph.microsoft.com/` and `https://graph.microsoft.com` are one resource. */
function appRoleKey(principalId: string, resource: string): string {
  return `${principalId.toLowerCase()} ${resource.replace(/\/+$/, '').toLowerCase()}`;
}

function guidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function sendError(res: ServerResponse, status: number, message: string): void {
  // Unsourced: the error body shape (statusCode, message, correlationId) is modelled from what msal-node parses.
  // Shape of App Service MSI errors; msal-node reads `message` into error_description.
  sendJson(res, status, { statusCode: status, message, correlationId: randomUUID() });
}
