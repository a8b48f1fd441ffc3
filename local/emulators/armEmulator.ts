import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { jwtVerify } from 'jose';
import { EMULATOR_RESOURCE_GROUP, EMULATOR_SUBSCRIPTION_ID } from './keyVaultEmulator';
import { EMULATOR_ISSUER, EMULATOR_TENANT_ID, tokenSecretBytes } from './managedIdentityEndpoint';
import { sendJson as writeJson } from './sendJson';

/** Built-in role `Key Vault Secrets User`: read secret contents. */
export const KEY_VAULT_SECRETS_USER = '4633458b-17de-408a-b874-0445c86b69e6';
/** Built-in role `Key Vault Reader`: read vault and secret metadata, not contents. */
export const KEY_VAULT_READER = '21090545-7ca7-4776-b22c-e363652d74d2';
/** Built-in role `Key Vault Administrator`: every data-plane operation. */
export const KEY_VAULT_ADMINISTRATOR = '00482a5a-887f-4fb3-b363-3b7fe8e74483';
/** Built-in role `Key Vault Secrets Officer`: every secret operation except managing permissions. */
export const KEY_VAULT_SECRETS_OFFICER = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7';
/** Built-in role `Key Vault Crypto User`: read keys and use them for cryptographic operations. */
export const KEY_VAULT_CRYPTO_USER = '12338af0-0e69-4776-bea7-57ae8d297424';
/** Built-in role `Reader`: read every control-plane resource (e.g. `vaults.get`). */
export const READER = 'acdd72a7-3385-48ef-bd42-f606fba81ae7';

/** The management endpoint the real SDK clients use; the CONNECT proxy routes it here. */
export const ARM_ENDPOINT = 'https://management.azure.com';

/** Control-plane settings of an emulated vault, as `vaults.get` reports them. */
export interface VaultState {
  /** `properties.networkAcls.defaultAction`. */
  networkDefaultAction: 'Allow' | 'Deny';
  /** `properties.networkAcls.ipRules[].value`, e.g. `203.0.113.0/24`. */
  ipRules: string[];
  /** `properties.networkAcls.virtualNetworkRules[].id` (subnet resource ids). */
  virtualNetworkRules: string[];
  /** `properties.publicNetworkAccess`. */
  publicNetworkAccess: 'Enabled' | 'Disabled';
  /** `properties.enableSoftDelete`. */
  enableSoftDelete: boolean;
  /** `properties.softDeleteRetentionInDays`. */
  softDeleteRetentionInDays: number;
  /** `properties.enablePurgeProtection`; `false` is sent as an absent property, as ARM does. */
  enablePurgeProtection: boolean;
  /** `properties.enableRbacAuthorization`. */
  enableRbacAuthorization: boolean;
  /**
   * `properties.accessPolicies`: per object id, the permissions on secrets, keys and certificates
   * (ARM's names, e.g. `Get`, `List`, `all`; absent kinds are empty lists; storage is always empty).
   */
  accessPolicies: { objectId: string; secrets: string[]; keys?: string[]; certificates?: string[] }[];
  /** The resource's `location` (ARM region name, e.g. `westeurope`). */
  location: string;
}

/** A failure the emulator injects into every request until {@link ArmEmulator.setFault} is called with `null`. */
export type ArmFault =
  /**
   * `403` = `AuthorizationFailed` (the caller lacks Reader), `500` = `InternalServerError`,
   * `503` = `ServiceUnavailable` with `Retry-After: retryAfterSeconds` (default 0).
   */
  | { status: 403 | 500 | 503; retryAfterSeconds?: number }
  /** Accepts the request and never answers; {@link ArmEmulator.stop} destroys the connection. */
  | { kind: 'hang' };

/** Where a role assignment is made; the wider ones are inherited by every vault below them. */
export type RoleAssignmentScope = 'vault' | 'resourceGroup' | 'subscription';

/** The operations the emulator serves, for {@link ArmRequestCountFilter}. */
export type ArmOperation = 'vaults.get' | 'roleAssignments.list' | 'unknown';

/** Filter of {@link ArmEmulator.requestCount}; every given field must match. */
export interface ArmRequestCountFilter {
  method?: string;
  operation?: ArmOperation;
  /** The vault the request is about (its own resource or the vault scope of a listing). */
  vault?: string;
  /** Path without query string, compared case-insensitively (ARM paths are case-insensitive). */
  path?: string;
}

/** A role assignment as the emulator keeps it. */
export interface EmulatedRoleAssignment {
  /** Assignment name (a GUID), the last segment of its id. */
  name: string;
  principalId: string;
  roleDefinitionGuid: string;
  /** Scope resource id, e.g. `/subscriptions/<sub>/resourceGroups/local`. */
  scope: string;
}

const DEFAULT_STATE: VaultState = {
  networkDefaultAction: 'Allow',
  ipRules: [],
  virtualNetworkRules: [],
  publicNetworkAccess: 'Enabled',
  enableSoftDelete: true,
  softDeleteRetentionInDays: 90,
  enablePurgeProtection: false,
  enableRbacAuthorization: true,
  accessPolicies: [],
  location: 'westeurope',
};

/** ARM accepts tokens for either of its historical resource URIs, with or without the slash. */
const AUDIENCES = [ARM_ENDPOINT, `${ARM_ENDPOINT}/`, 'https://management.core.windows.net', 'https://management.core.windows.net/'];
const API_VERSION_RE = /^\d{4}-\d{2}-\d{2}(-preview)?$/;
const VAULT_NAME_RE = /^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/;
const DEFAULT_PAGE_SIZE = 100;

type Json = Record<string, unknown>;

class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface VaultRecord {
  name: string;
  state: VaultState;
  createdAt: string;
}

interface RoleAssignmentRecord extends EmulatedRoleAssignment {
  createdOn: string;
}

/** A parsed scope: each level known to exist. */
interface Scope {
  /** Canonical resource id (ARM's casing). */
  id: string;
  vault: VaultRecord | undefined;
}

interface Caller {
  oid: string;
}

/**
 * Emulates the slice of Azure Resource Manager the secret broker's health check reads, behind
 * one HTTPS server on 127.0.0.1 that the CONNECT proxy reaches as `management.azure.com:443`:
 *
 * - `GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}` (`vaults.get`
 *   of `@azure/arm-keyvault`), any `YYYY-MM-DD` api-version;
 * - `GET {scope}/providers/Microsoft.Authorization/roleAssignments` (`roleAssignments.listForScope` of
 *   `@azure/arm-authorization`) at subscription, resource-group or vault scope, with `$filter`
 *   `principalId eq '{id}'`, `assignedTo('{id}')`, `atScope()` (joined by `and`), paged by `nextLink`.
 *
 * Requests need an HS256 bearer token from the emulated managed-identity endpoint whose audience is
 * `https://management.azure.com` (or `management.core.windows.net`); anything else is a 401 the way ARM
 * answers it. Errors use ARM's `{"error":{"code","message"}}` body.
 */
export class ArmEmulator {
  /** TCP port of the HTTPS server on 127.0.0.1. */
  readonly port: number;
  private readonly vaults = new Map<string, VaultRecord>();
  private readonly assignments: RoleAssignmentRecord[] = [];
  private readonly counts: Array<{ method: string; path: string; operation: ArmOperation; vault: string }> = [];
  private readonly sockets = new Set<Socket>();
  private fault: ArmFault | null = null;
  private pageSize = DEFAULT_PAGE_SIZE;

  private constructor(
    private readonly server: Server,
    private readonly key: Uint8Array,
    port: number,
  ) {
    this.port = port;
  }

  /** Starts the emulator on 127.0.0.1 (`port` 0 or absent: any free port) with no vaults registered. */
  static async start(opts: { certPem: string; keyPem: string; tokenSecret: Uint8Array | string; port?: number }): Promise<ArmEmulator> {
    const server = createServer({ cert: opts.certPem, key: opts.keyPem });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
    const emulator = new ArmEmulator(server, tokenSecretBytes(opts.tokenSecret), port);
    server.on('connection', (socket: Socket) => {
      emulator.sockets.add(socket);
      socket.once('close', () => emulator.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => emulator.onRequest(req, res));
    return emulator;
  }

  // ---------------------------------------------------------------- control API

  /** Resource id of a vault, the same as `KeyVaultEmulator.resourceId`. */
  resourceId(vault: string): string {
    return `${resourceGroupId()}/providers/Microsoft.KeyVault/vaults/${vault.toLowerCase()}`;
  }

  /**
   * Registers a vault with the defaults (Allow, no IP/VNet rules, public access Enabled, soft delete on
   * with 90 days, purge protection off, RBAC mode on, no access policies, location `westeurope`) overridden by `opts`.
   * Registering a name again replaces its state; its role assignments stay.
   */
  addVault(name: string, opts: Partial<VaultState> = {}): void {
    if (!VAULT_NAME_RE.test(name)) throw new Error(`Invalid vault name: ${name}`);
    const key = name.toLowerCase();
    this.vaults.set(key, { name: key, state: mergeState(cloneState(DEFAULT_STATE), opts), createdAt: new Date().toISOString() });
  }

  /** Changes some settings of a registered vault; the others keep their values. */
  setVault(name: string, patch: Partial<VaultState>): void {
    const v = this.vaultOrThrow(name);
    v.state = mergeState(v.state, patch);
  }

  /** A copy of a registered vault's current settings. */
  getVault(name: string): VaultState {
    return cloneState(this.vaultOrThrow(name).state);
  }

  /**
   * Assigns a role to a principal at the vault, its resource group or the subscription (inherited by
   * every vault), as a `ServicePrincipal` assignment. Returns the assignment name (a new GUID).
   */
  addRoleAssignment(vault: string, principalId: string, roleDefinitionGuid: string, scope: RoleAssignmentScope = 'vault'): string {
    this.vaultOrThrow(vault);
    const scopeId = scope === 'vault' ? this.resourceId(vault) : scope === 'resourceGroup' ? resourceGroupId() : subscriptionId();
    const name = randomUUID();
    this.assignments.push({
      name,
      principalId,
      roleDefinitionGuid: roleDefinitionGuid.toLowerCase(),
      scope: scopeId,
      createdOn: new Date().toISOString(),
    });
    return name;
  }

  /**
   * Removes every assignment of `principalId` that applies to the vault, inherited ones included (so a
   * subscription-scope assignment disappears for every vault). Returns how many were removed.
   */
  removeRoleAssignments(vault: string, principalId: string): number {
    const scope = this.resourceId(this.vaultOrThrow(vault).name);
    let removed = 0;
    for (let i = this.assignments.length - 1; i >= 0; i--) {
      const a = this.assignments[i] as RoleAssignmentRecord;
      if (a.principalId.toLowerCase() === principalId.toLowerCase() && isAncestorOrSelf(a.scope, scope)) {
        this.assignments.splice(i, 1);
        removed++;
      }
    }
    return removed;
  }

  /** Every role assignment that applies to the vault (its own and inherited), oldest first. */
  roleAssignments(vault: string): EmulatedRoleAssignment[] {
    const scope = this.resourceId(this.vaultOrThrow(vault).name);
    return this.assignments
      .filter((a) => isAncestorOrSelf(a.scope, scope))
      .map(({ name, principalId, roleDefinitionGuid, scope: s }) => ({ name, principalId, roleDefinitionGuid, scope: s }));
  }

  /** Injects a fault into every following request, or clears it (`null`). Hung requests stay hung until {@link stop}. */
  setFault(fault: ArmFault | null): void {
    this.fault = fault;
  }

  /** Items per role-assignment page (default 100), so tests can make the SDK follow `nextLink`. */
  setPageSize(size: number): void {
    if (!Number.isInteger(size) || size < 1) throw new Error(`Page size must be a positive integer, got ${size}`);
    this.pageSize = size;
  }

  /** Requests received since start or {@link resetCounts} (authenticated or not) matching `filter`. */
  requestCount(filter: ArmRequestCountFilter = {}): number {
    const method = filter.method?.toUpperCase();
    const path = filter.path === undefined ? undefined : normalisePath(filter.path).toLowerCase();
    const vault = filter.vault?.toLowerCase();
    return this.counts.filter(
      (c) =>
        (method === undefined || c.method === method) &&
        (path === undefined || c.path === path) &&
        (vault === undefined || c.vault === vault) &&
        (filter.operation === undefined || c.operation === filter.operation),
    ).length;
  }

  /** Zeroes the request counters. */
  resetCounts(): void {
    this.counts.length = 0;
  }

  /** Stops listening and destroys every connection, hung ones included. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await closed;
  }

  // ---------------------------------------------------------------- HTTP pipeline

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = normalisePath(q === -1 ? rawUrl : rawUrl.slice(0, q));
    const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
    const route = classify(path);
    this.counts.push({ method, path: path.toLowerCase(), operation: route.operation, vault: route.vault ?? '' });

    // A hang is a network fault: it precedes authentication, so even unauthenticated requests stall.
    if (this.fault && 'kind' in this.fault) return;

    this.authenticate(req.headers.authorization).then(
      (caller) => {
        if (res.destroyed) return;
        try {
          this.authorised(res, method, path, query, route, caller);
        } catch (err) {
          sendError(res, err instanceof ArmError ? err : new ArmError(500, 'InternalServerError', String(err)));
        }
      },
      (err: unknown) => sendError(res, err instanceof ArmError ? err : new ArmError(500, 'InternalServerError', String(err))),
    );
  }

  private authorised(res: ServerResponse, method: string, path: string, query: URLSearchParams, route: Route, caller: Caller): void {
    if (this.fault && 'status' in this.fault) throw faultError(this.fault, method, path, route, caller);

    const apiVersion = query.get('api-version');
    if (!apiVersion) {
      throw new ArmError(
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      );
    }
    if (!API_VERSION_RE.test(apiVersion)) {
      throw new ArmError(
        400,
        'InvalidApiVersionParameter',
        `The api-version '${apiVersion}' is invalid. The supported versions are 'YYYY-MM-DD[-preview]'.`,
      );
    }
    if (route.operation === 'unknown') {
      throw new ArmError(
        404,
        'NotFound',
        `The path '${path}' is not served by the ARM emulator (only vaults.get and roleAssignments.listForScope are).`,
      );
    }
    if (method !== 'GET') {
      throw new ArmError(405, 'MethodNotAllowed', `The ARM emulator serves only GET on '${path}'; ${method} is not emulated.`);
    }
    if (route.operation === 'vaults.get') {
      const scope = this.resolveScope(route.scope);
      if (!scope.vault) throw new ArmError(500, 'InternalServerError', 'Vault route without a vault.');
      return sendJson(res, 200, this.vaultJson(scope.vault));
    }
    sendJson(res, 200, this.listRoleAssignments(route.scope, query, apiVersion));
  }

  /** Checks subscription, resource group and vault in that order, with ARM's not-found codes. */
  private resolveScope(segments: string[]): Scope {
    const [subKw, sub, rgKw, rg, provKw, ns, type, name, ...rest] = segments;
    if (subKw?.toLowerCase() !== 'subscriptions' || sub === undefined) {
      throw new ArmError(400, 'InvalidScope', `The scope '/${segments.join('/')}' is not a subscription, resource group or vault scope.`);
    }
    if (sub.toLowerCase() !== EMULATOR_SUBSCRIPTION_ID) {
      throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${sub}' could not be found.`);
    }
    if (rgKw === undefined) return { id: subscriptionId(), vault: undefined };
    if (rgKw.toLowerCase() !== 'resourcegroups' || rg === undefined) {
      throw new ArmError(400, 'InvalidScope', `The scope '/${segments.join('/')}' is not a subscription, resource group or vault scope.`);
    }
    if (rg.toLowerCase() !== EMULATOR_RESOURCE_GROUP.toLowerCase()) {
      throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`);
    }
    if (provKw === undefined) return { id: resourceGroupId(), vault: undefined };
    const isVault =
      provKw.toLowerCase() === 'providers' &&
      ns?.toLowerCase() === 'microsoft.keyvault' &&
      type?.toLowerCase() === 'vaults' &&
      name !== undefined &&
      rest.length === 0;
    if (!isVault) {
      throw new ArmError(400, 'InvalidScope', `The scope '/${segments.join('/')}' is not a subscription, resource group or vault scope.`);
    }
    const vault = this.vaults.get(name.toLowerCase());
    if (!vault) {
      throw new ArmError(
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.KeyVault/vaults/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
      );
    }
    return { id: this.resourceId(vault.name), vault };
  }

  private vaultJson(v: VaultRecord): Json {
    const s = v.state;
    const properties: Json = {
      sku: { family: 'A', name: 'standard' },
      tenantId: EMULATOR_TENANT_ID,
      networkAcls: {
        bypass: 'AzureServices',
        defaultAction: s.networkDefaultAction,
        ipRules: s.ipRules.map((value) => ({ value })),
        virtualNetworkRules: s.virtualNetworkRules.map((id) => ({ id, ignoreMissingVnetServiceEndpoint: false })),
      },
      accessPolicies: s.accessPolicies.map((p) => ({
        tenantId: EMULATOR_TENANT_ID,
        objectId: p.objectId,
        permissions: { keys: [...(p.keys ?? [])], secrets: [...p.secrets], certificates: [...(p.certificates ?? [])], storage: [] },
      })),
      enabledForDeployment: false,
      enabledForDiskEncryption: false,
      enabledForTemplateDeployment: false,
      enableSoftDelete: s.enableSoftDelete,
      softDeleteRetentionInDays: s.softDeleteRetentionInDays,
      enableRbacAuthorization: s.enableRbacAuthorization,
      vaultUri: `https://${v.name}.vault.azure.net/`,
      provisioningState: 'Succeeded',
      publicNetworkAccess: s.publicNetworkAccess,
    };
    // Purge protection cannot be switched off once on, and ARM omits the property on vaults that never had it.
    if (s.enablePurgeProtection) properties['enablePurgeProtection'] = true;
    return {
      id: this.resourceId(v.name),
      name: v.name,
      type: 'Microsoft.KeyVault/vaults',
      location: s.location,
      tags: {},
      systemData: {
        createdBy: EMULATOR_TENANT_ID,
        createdByType: 'Application',
        createdAt: v.createdAt,
        lastModifiedBy: EMULATOR_TENANT_ID,
        lastModifiedByType: 'Application',
        lastModifiedAt: v.createdAt,
      },
      properties,
    };
  }

  private listRoleAssignments(segments: string[], query: URLSearchParams, apiVersion: string): Json {
    const scope = this.resolveScope(segments);
    const filterText = query.get('$filter');
    const filter = parseFilter(filterText);
    const matching = this.assignments.filter((a) => {
      const applies = isAncestorOrSelf(a.scope, scope.id) || (!filter.atScope && isAncestorOrSelf(scope.id, a.scope));
      return applies && (filter.principalId === undefined || a.principalId.toLowerCase() === filter.principalId);
    });
    const skipToken = query.get('$skiptoken');
    const start = skipToken === null ? 0 : Number(Buffer.from(skipToken, 'base64url').toString('utf8'));
    if (!Number.isInteger(start) || start < 0) throw new ArmError(400, 'InvalidSkipToken', `The skip token '${skipToken}' is invalid.`);
    const page = matching.slice(start, start + this.pageSize);
    const out: Json = { value: page.map((a) => roleAssignmentJson(a)) };
    if (start + this.pageSize < matching.length) {
      // Absolute and self-contained (filter, api-version), as ARM's are: the SDK GETs it verbatim.
      const params = [
        `api-version=${encodeURIComponent(apiVersion)}`,
        `$skiptoken=${Buffer.from(String(start + this.pageSize)).toString('base64url')}`,
      ];
      if (filterText !== null) params.unshift(`$filter=${encodeURIComponent(filterText)}`);
      out['nextLink'] = `${ARM_ENDPOINT}${scope.id}/providers/Microsoft.Authorization/roleAssignments?${params.join('&')}`;
    }
    return out;
  }

  // ---------------------------------------------------------------- auth

  /** Verifies the bearer token; rejects with ARM's 401. */
  private async authenticate(authorization: string | undefined): Promise<Caller> {
    const match = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization) : null;
    const token = match?.[1];
    if (!token) {
      throw unauthorized(
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is missing.",
        "The authentication failed because of missing 'Authorization' header.",
      );
    }
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], issuer: EMULATOR_ISSUER, audience: AUDIENCES });
      return { oid: typeof payload['oid'] === 'string' ? payload['oid'] : (payload.sub ?? '') };
    } catch (err) {
      const code = (err as { code?: string }).code;
      const claim = (err as { claim?: string }).claim;
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim === 'aud') {
        const aud = audienceOf(token);
        throw unauthorized(
          'InvalidAuthenticationTokenAudience',
          `The access token has been obtained for wrong audience or resource '${aud}'. It should exactly match with one of the allowed audiences '${AUDIENCES.join("','")}'.`,
          'The access token has been obtained from wrong audience or resource.',
        );
      }
      if (code === 'ERR_JWT_EXPIRED') {
        throw unauthorized(
          'ExpiredAuthenticationToken',
          'The access token expiry UTC time is earlier than current UTC time.',
          'The access token has expired.',
        );
      }
      throw unauthorized('InvalidAuthenticationToken', 'The access token is invalid.', 'The access token is invalid.');
    }
  }

  private vaultOrThrow(name: string): VaultRecord {
    const v = this.vaults.get(name.toLowerCase());
    if (!v) throw new Error(`Unknown vault: ${name} (register it with addVault first)`);
    return v;
  }
}

// ---------------------------------------------------------------- routing

interface Route {
  operation: ArmOperation;
  /** Path segments of the resource (vaults.get) or the scope (roleAssignments.list). */
  scope: string[];
  /** Lower-case vault name the request is about, if any. */
  vault: string | undefined;
}

function classify(path: string): Route {
  const seg = path
    .split('/')
    .filter((s) => s !== '')
    .map(safeDecode);
  const n = seg.length;
  const lower = seg.map((s) => s.toLowerCase());
  if (n >= 3 && lower[n - 3] === 'providers' && lower[n - 2] === 'microsoft.authorization' && lower[n - 1] === 'roleassignments') {
    const scope = seg.slice(0, n - 3);
    return { operation: 'roleAssignments.list', scope, vault: vaultOf(scope) };
  }
  if (
    n === 8 &&
    lower[0] === 'subscriptions' &&
    lower[2] === 'resourcegroups' &&
    lower[4] === 'providers' &&
    lower[5] === 'microsoft.keyvault' &&
    lower[6] === 'vaults'
  ) {
    return { operation: 'vaults.get', scope: seg, vault: lower[7] };
  }
  return { operation: 'unknown', scope: seg, vault: undefined };
}

function vaultOf(scope: string[]): string | undefined {
  const lower = scope.map((s) => s.toLowerCase());
  return lower.length === 8 && lower[6] === 'vaults' ? lower[7] : undefined;
}

interface Filter {
  principalId: string | undefined;
  atScope: boolean;
}

/** The role-assignment `$filter` forms ARM documents; anything else is ARM's 400. */
function parseFilter(text: string | null): Filter {
  const out: Filter = { principalId: undefined, atScope: false };
  if (text === null || text.trim() === '') return out;
  for (const clause of text.trim().split(/\s+and\s+/i)) {
    const principal = /^principalId\s+eq\s+'([^']+)'$/i.exec(clause) ?? /^assignedTo\('([^']+)'\)$/i.exec(clause);
    if (principal?.[1] !== undefined) {
      out.principalId = principal[1].toLowerCase();
    } else if (/^atScope\(\)$/i.test(clause)) {
      out.atScope = true;
    } else {
      throw new ArmError(
        400,
        'UnsupportedQuery',
        `The filter '${text}' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{value}'' or 'assignedTo('{value}')'.`,
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------- helpers

function subscriptionId(): string {
  return `/subscriptions/${EMULATOR_SUBSCRIPTION_ID}`;
}

function resourceGroupId(): string {
  return `${subscriptionId()}/resourceGroups/${EMULATOR_RESOURCE_GROUP}`;
}

/** True when `ancestor` is `scope` or one of its parents, on whole path segments, case-insensitively. */
function isAncestorOrSelf(ancestor: string, scope: string): boolean {
  const a = ancestor.toLowerCase();
  const s = scope.toLowerCase();
  return s === a || s.startsWith(`${a}/`);
}

function roleAssignmentJson(a: RoleAssignmentRecord): Json {
  return {
    properties: {
      roleDefinitionId: `${subscriptionId()}/providers/Microsoft.Authorization/roleDefinitions/${a.roleDefinitionGuid}`,
      principalId: a.principalId,
      principalType: 'ServicePrincipal',
      scope: a.scope,
      condition: null,
      conditionVersion: null,
      createdOn: a.createdOn,
      updatedOn: a.createdOn,
      delegatedManagedIdentityResourceId: null,
      description: null,
    },
    id: `${a.scope}/providers/Microsoft.Authorization/roleAssignments/${a.name}`,
    type: 'Microsoft.Authorization/roleAssignments',
    name: a.name,
  };
}

function mergeState(base: VaultState, patch: Partial<VaultState>): VaultState {
  const next = { ...base };
  for (const [k, v] of Object.entries(patch) as Array<[keyof VaultState, unknown]>) {
    if (v === undefined) continue;
    if (!(k in DEFAULT_STATE)) throw new Error(`Unknown vault setting: ${String(k)}`);
    (next as Record<string, unknown>)[k] = v;
  }
  if (next.softDeleteRetentionInDays < 7 || next.softDeleteRetentionInDays > 90 || !Number.isInteger(next.softDeleteRetentionInDays)) {
    throw new Error(`softDeleteRetentionInDays must be an integer from 7 to 90, got ${next.softDeleteRetentionInDays}`);
  }
  return cloneState(next);
}

/** Deep copy, so callers mutating arrays they passed in (or got back) cannot change the served state. */
function cloneState(s: VaultState): VaultState {
  return {
    ...s,
    ipRules: [...s.ipRules],
    virtualNetworkRules: [...s.virtualNetworkRules],
    accessPolicies: s.accessPolicies.map((p) => ({
      objectId: p.objectId,
      secrets: [...p.secrets],
      keys: [...(p.keys ?? [])],
      certificates: [...(p.certificates ?? [])],
    })),
  };
}

function faultError(
  fault: { status: 403 | 500 | 503; retryAfterSeconds?: number },
  method: string,
  path: string,
  route: Route,
  caller: Caller,
): ArmError {
  if (fault.status === 403) {
    const action =
      route.operation === 'roleAssignments.list'
        ? 'Microsoft.Authorization/roleAssignments/read'
        : route.operation === 'vaults.get'
          ? 'Microsoft.KeyVault/vaults/read'
          : `${method} ${path}`;
    const scope = route.operation === 'roleAssignments.list' ? `/${route.scope.join('/')}` : path;
    return new ArmError(
      403,
      'AuthorizationFailed',
      `The client '${caller.oid}' with object id '${caller.oid}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    );
  }
  if (fault.status === 503) {
    return new ArmError(503, 'ServiceUnavailable', 'The service is currently unavailable. Please retry the request.', {
      'Retry-After': String(fault.retryAfterSeconds ?? 0),
    });
  }
  const id = randomUUID();
  return new ArmError(
    500,
    'InternalServerError',
    `Encountered internal server error. Diagnostic information: timestamp '${new Date().toISOString()}', subscription id '${EMULATOR_SUBSCRIPTION_ID}', tracking id '${id}', request correlation id '${id}'.`,
  );
}

function unauthorized(code: string, message: string, description: string): ArmError {
  // authorization_uri names the tenant, which is how ARM clients discover a subscription's tenant.
  return new ArmError(401, code, message, {
    'WWW-Authenticate': `Bearer authorization_uri="https://login.windows.net/${EMULATOR_TENANT_ID}", error="invalid_token", error_description="${description}"`,
  });
}

/** The unverified `aud` of a JWT, for the error message only. */
function audienceOf(token: string): string {
  try {
    const { aud } = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { aud?: unknown };
    if (typeof aud === 'string') return aud;
    return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string').join(',') : '';
  } catch {
    return '';
  }
}

function normalisePath(path: string): string {
  // The authorization SDK joins "/{scope}" with a scope that starts with "/" itself: ARM tolerates the "//".
  const collapsed = path.replace(/\/{2,}/g, '/');
  return collapsed.length > 1 ? collapsed.replace(/\/+$/, '') : collapsed;
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function armHeaders(): Record<string, string> {
  const id = randomUUID();
  return {
    'Cache-Control': 'no-cache',
    Pragma: 'no-cache',
    'x-ms-request-id': id,
    'x-ms-correlation-request-id': id,
    'x-ms-routing-request-id': `LOCAL:${new Date().toISOString().replace(/[-:.]/g, '')}:${id}`,
    'x-ms-ratelimit-remaining-subscription-reads': '11999',
    'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void {
  writeJson(res, status, body, { ...armHeaders(), ...extra });
}

function sendError(res: ServerResponse, err: ArmError): void {
  sendJson(res, err.status, { error: { code: err.code, message: err.message } }, err.headers);
}
