// Authentication and authorisation of the Key Vault emulator: the bearer challenge, the check of the
// emulated managed identity's tokens, and the access-policy permission / RBAC action a request needs.
import type { ServerResponse } from 'node:http';
import { jwtVerify } from 'jose';
import { HttpError } from './keyVaultErrors';
import { sendError } from './keyVaultHttp';
import { EMULATOR_ISSUER, EMULATOR_TENANT_ID } from './managedIdentityEndpoint';

/** Who a valid token says the caller is. */
export interface Caller {
  appid: string;
  oid: string;
  exp: number;
}

const RESOURCE = 'https://vault.azure.net';
/** Key Vault authentication: an unauthenticated request is answered 401 with this challenge, which the SDK follows. */
const CHALLENGE = `Bearer authorization="https://login.microsoftonline.com/${EMULATOR_TENANT_ID}", resource="${RESOURCE}"`;
const TOKEN_CACHE_LIMIT = 10_000;

/** Accepts only HS256 tokens of the emulated managed-identity endpoint, for the vault resource; caches the valid ones. */
export class TokenVerifier {
  private readonly tokenCache = new Map<string, Caller>();

  constructor(private readonly key: Uint8Array) {}

  /** The caller of an `Authorization` header verified before and not expired yet. */
  cachedCaller(authorization: string | undefined): Caller | undefined {
    if (!authorization) return undefined;
    const caller = this.tokenCache.get(authorization);
    if (caller && caller.exp > Date.now() / 1000) return caller;
    return undefined;
  }

  /** Verifies a bearer token; returns the caller or the reason it was refused. */
  async verify(authorization: string | undefined): Promise<Caller | string> {
    const match = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization) : null;
    const token = match?.[1];
    if (!token) return 'AKV10000: Request is missing a Bearer or PoP token.';
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'],
        issuer: EMULATOR_ISSUER,
        audience: [RESOURCE, `${RESOURCE}/`],
      });
      const caller: Caller = {
        appid: typeof payload['appid'] === 'string' ? payload['appid'] : '',
        oid: typeof payload['oid'] === 'string' ? payload['oid'] : (payload.sub ?? ''),
        exp: payload.exp ?? 0,
      };
      if (this.tokenCache.size >= TOKEN_CACHE_LIMIT) this.tokenCache.clear();
      this.tokenCache.set(authorization as string, caller);
      return caller;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
        const claim = (err as { claim?: string }).claim;
        if (claim === 'aud') return `AKV10022: Invalid audience. Expected ${RESOURCE}.`;
        if (claim === 'iss') return `AKV10032: Invalid issuer. Expected ${EMULATOR_ISSUER}.`;
      }
      if (code === 'ERR_JWT_EXPIRED') return 'Access token is expired.';
      return 'Access token could not be validated.';
    }
  }
}

/** 401 with the bearer challenge and the reason the token was refused. */
export function sendChallenge(res: ServerResponse, message: string): void {
  sendError(res, new HttpError(401, 'Unauthorized', message), { 'WWW-Authenticate': CHALLENGE });
}

/** The access-policy permission on secrets (`get`, `list`, `set`, `delete`, `purge`, `recover`) a request needs. */
export function policyPermission(method: string, path: string): string {
  if (path.startsWith('/deletedsecrets'))
    return method === 'DELETE' ? 'purge' : method === 'POST' ? 'recover' : method === 'GET' && path === '/deletedsecrets' ? 'list' : 'get';
  if (method === 'PUT' || method === 'PATCH') return 'set';
  if (method === 'DELETE') return 'delete';
  return path === '/secrets' || path.endsWith('/versions') ? 'list' : 'get';
}

/**
 * The Azure RBAC data action (of the Microsoft.KeyVault provider) a request needs.
 * Learn: "Azure permissions for Security" (Microsoft.KeyVault data actions: vaults/secrets/getSecret/action,
 * readMetadata/action, setSecret/action, update/action, delete, recover/action, purge/action) and "Azure Key
 * Vault access policy to RBAC migration" (access policy Set = setSecret/action plus update/action).
 */
export function rbacAction(method: string, path: string): string {
  // Learn: "Azure permissions for Security": PATCH (Update Secret) is its own data action, update/action.
  if (method === 'PATCH' && !path.startsWith('/deletedsecrets')) return 'Microsoft.KeyVault/vaults/secrets/update/action';
  const permission = policyPermission(method, path);
  const actions: Record<string, string> = {
    get: 'Microsoft.KeyVault/vaults/secrets/getSecret/action',
    list: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
    set: 'Microsoft.KeyVault/vaults/secrets/setSecret/action',
    delete: 'Microsoft.KeyVault/vaults/secrets/delete',
    purge: 'Microsoft.KeyVault/vaults/secrets/purge/action',
    recover: 'Microsoft.KeyVault/vaults/secrets/recover/action',
  };
  return actions[permission] ?? 'Microsoft.KeyVault/vaults/secrets/readMetadata/action';
}

/** The built-in Key Vault roles on secrets the emulator knows, by name. */
export type SecretRole = 'Key Vault Secrets User' | 'Key Vault Secrets Officer' | 'Key Vault Administrator';

/**
 * Learn: "Azure built-in roles for Security": the data actions of each role.
 * Key Vault Secrets User (4633458b-17de-408a-b874-0445c86b69e6): vaults/secrets/getSecret/action and
 * vaults/secrets/readMetadata/action (read secret contents and metadata, nothing else).
 * Key Vault Secrets Officer (b86a8fe4-44ce-4948-aee5-eccb2c155cd7): vaults/secrets/* (every action on secrets).
 * Key Vault Administrator (00482a5a-887f-4fb3-b363-3b7fe8e74483): vaults/* (every data action).
 */
const ROLE_DATA_ACTIONS: Record<SecretRole, readonly string[]> = {
  'Key Vault Secrets User': ['Microsoft.KeyVault/vaults/secrets/getSecret/action', 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'],
  'Key Vault Secrets Officer': ['Microsoft.KeyVault/vaults/secrets/*'],
  'Key Vault Administrator': ['Microsoft.KeyVault/vaults/*'],
};

export const SECRET_ROLES: readonly SecretRole[] = Object.keys(ROLE_DATA_ACTIONS) as SecretRole[];

/**
 * Whether a role grants a data action. Learn: "Understand Azure role definitions" (DataActions: `*` matches
 * every operation below that point; comparison is case-insensitive).
 */
export function roleAllows(role: SecretRole, action: string): boolean {
  const wanted = action.toLowerCase();
  return ROLE_DATA_ACTIONS[role].some((granted) => {
    const g = granted.toLowerCase();
    return g.endsWith('/*') ? wanted.startsWith(g.slice(0, -1)) : g === wanted;
  });
}
