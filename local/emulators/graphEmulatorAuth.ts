// Authentication and authorisation of the Microsoft Graph emulator: the check of the emulated
// managed identity's tokens and the app roles (application permissions) an operation needs.
// Sources are cited beside each rule (see docs/azure-fidelity.md).
import { jwtVerify } from 'jose';
import { type GraphHttpError, tokenAudienceInvalid, tokenExpired, tokenInvalid, tokenMissing } from './graphEmulatorErrors';
import { EMULATOR_ISSUER } from './managedIdentityEndpoint';

/** Who a valid token says the caller is, and the app roles it was granted. */
export interface GraphCaller {
  /** Object id of the caller's service principal (a managed identity's principal id). */
  oid: string;
  appid: string;
  roles: readonly string[];
  exp: number;
}

export const GRAPH_RESOURCE = 'https://graph.microsoft.com';
/** Microsoft Graph's own application id, which v1 tokens may carry as `aud` (Learn: "Verify first-party Microsoft applications in sign-in reports"). */
const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
/** Learn: "Access tokens in the Microsoft identity platform" (aud): the resource the token is for, here Graph. */
const AUDIENCES = [GRAPH_RESOURCE, `${GRAPH_RESOURCE}/`, GRAPH_APP_ID];
const TOKEN_CACHE_LIMIT = 10_000;

/** Accepts only HS256 tokens of the emulated managed-identity endpoint for Graph; caches the valid ones. */
export class GraphTokenVerifier {
  private readonly cache = new Map<string, GraphCaller>();

  constructor(private readonly key: Uint8Array) {}

  /** Verifies `Authorization: Bearer …`; returns the caller or Graph's 401. */
  async verify(authorization: string | undefined): Promise<GraphCaller | GraphHttpError> {
    const cached = authorization === undefined ? undefined : this.cache.get(authorization);
    if (cached && cached.exp > Date.now() / 1000) return cached;
    const token = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization)?.[1] : undefined;
    if (!token) return tokenMissing();
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], issuer: EMULATOR_ISSUER, audience: AUDIENCES });
      const roles = Array.isArray(payload['roles']) ? payload['roles'].filter((r): r is string => typeof r === 'string') : [];
      const caller: GraphCaller = {
        oid: typeof payload['oid'] === 'string' ? payload['oid'] : (payload.sub ?? ''),
        appid: typeof payload['appid'] === 'string' ? payload['appid'] : '',
        roles,
        exp: payload.exp ?? 0,
      };
      if (this.cache.size >= TOKEN_CACHE_LIMIT) this.cache.clear();
      this.cache.set(authorization as string, caller);
      return caller;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && (err as { claim?: string }).claim === 'aud') return tokenAudienceInvalid();
      if (code === 'ERR_JWT_EXPIRED') return tokenExpired();
      return tokenInvalid();
    }
  }
}

/** How far a caller's app roles reach for an operation: every application, only those it owns, or none. */
export type Reach = 'all' | 'owned' | 'none';

/**
 * Learn: "Microsoft Graph permissions reference" (Application.ReadWrite.OwnedBy: manage, including secrets,
 * only the applications the app owns) and the permission tables of "application: addPassword" and
 * "application: removePassword" (Application: Application.ReadWrite.OwnedBy least privileged;
 * Application.ReadWrite.All, Directory.ReadWrite.All higher).
 */
const WRITE_ALL = ['Application.ReadWrite.All', 'Directory.ReadWrite.All'];
const WRITE_OWNED = 'Application.ReadWrite.OwnedBy';
/** Learn: "Get application" (Application: Application.Read.All least privileged; the ReadWrite roles and Directory.Read.All higher). */
const READ_ALL = ['Application.Read.All', 'Directory.Read.All', ...WRITE_ALL];

export function reachOf(roles: readonly string[], operation: 'read' | 'write'): Reach {
  const all = operation === 'read' ? READ_ALL : WRITE_ALL;
  if (roles.some((r) => all.includes(r))) return 'all';
  // Unsourced: OwnedBy reading only owned applications (not every one) is modelled from the permission's description.
  if (roles.includes(WRITE_OWNED)) return 'owned';
  return 'none';
}
