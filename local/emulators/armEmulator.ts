import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tokenSecretBytes } from './managedIdentityEndpoint';
import {
  ArmError,
  type Json,
  authenticateArm,
  cloneJson,
  isAncestorOrSelf,
  normalisePath,
  parseJsonBody,
  readArmBody,
  resourceGroupId,
  segmentsOf,
  sendAnswer,
  sendArmError,
  subscriptionId,
} from './armCore';
import { LroManager } from './armLro';
import type { ArmWorld } from './armResources';
import { classify, type RouteInfo, routeArm } from './armRouter';
import { ArmStore, DEFAULT_VAULT_STATE, type EmulatedRoleAssignment, type VaultState, cloneVaultState, mergeVaultState } from './armStore';
import { vaultResourceId } from './armVaults';
import { SITE_TYPE } from './armWeb';
import { ScmHost } from './scmHost';
import { SiteRuntime } from './siteRuntime';
import { SiteRegistry } from './siteState';
import {
  type ArmEmulatorOptions,
  type ArmFault,
  type ArmInjectedFailure,
  type ArmRequestCountFilter,
  type DeployedPackageInfo,
  type RoleAssignmentScope,
  faultError,
} from './armEmulatorTypes';

export { ARM_ENDPOINT } from './armCore';
export type { ArmOperation } from './armRouter';
export type { EmulatedRoleAssignment, VaultState } from './armStore';
export type { IndexedFunction } from './siteState';
export { STORAGE_BLOB_DATA_CONTRIBUTOR, STORAGE_BLOB_DATA_OWNER } from './scmHost';
export * from './armEmulatorTypes';

const DEFAULT_PAGE_SIZE = 100;
const API_VERSION_RE = /^\d{4}-\d{2}-\d{2}(-preview)?$/;
// Learn: "Naming rules and restrictions for Azure resources" (Microsoft.KeyVault vaults: 3-24, start with letter, end with letter or digit)
const VAULT_NAME_RE = /^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/;
// Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go (One Deploy at https://<app>.scm.azurewebsites.net with an ARM token)
const SCM_HOST_RE = /^([a-z0-9-]+)\.scm\.azurewebsites\.net(?::443)?$/i;
const SITE_HOST_RE = /^([a-z0-9-]+)\.azurewebsites\.net(?::443)?$/i;

interface CountedRequest extends RouteInfo {
  method: string;
  path: string;
  host: string;
}

/**
 * Emulates the slice of Azure the secret broker and its deployment use, behind one HTTPS server on
 * 127.0.0.1 that the CONNECT proxy reaches as `management.azure.com:443`, `<app>.scm.azurewebsites.net:443`
 * and `<app>.azurewebsites.net:443` (dispatched by Host header):
 *
 * - ARM (see armRouter.ts): resource groups, storage accounts, blob containers, tables, Log Analytics
 *   workspaces, Application Insights components, App Service plans, function apps and their
 *   settings, keys and functions, Event Grid system topics and their subscriptions, role
 *   assignments at any scope, `vaults.get` and access policies of the registered vaults, with
 *   ARM's long-running-operation patterns and error bodies, any `YYYY-MM-DD` api-version;
 * - the SCM site: One Deploy and deployment status (scmHost.ts);
 * - the site: each deployed package runs as a local Functions host process (siteRuntime.ts).
 *
 * ARM and SCM requests need an HS256 bearer token from the emulated managed-identity endpoint whose
 * audience is `https://management.azure.com` (or `management.core.windows.net`).
 */
export class ArmEmulator {
  /** TCP port of the HTTPS server on 127.0.0.1. */
  readonly port: number;
  private readonly store = new ArmStore();
  private readonly sites = new SiteRegistry();
  private readonly runtime: SiteRuntime;
  private readonly scm: ScmHost;
  private readonly world: ArmWorld;
  private readonly counts: CountedRequest[] = [];
  private readonly failures: Array<ArmInjectedFailure & { left: number }> = [];
  private readonly sockets = new Set<Socket>();
  private fault: ArmFault | null = null;
  private pageSize = DEFAULT_PAGE_SIZE;

  private constructor(
    private readonly server: Server,
    private readonly key: Uint8Array,
    port: number,
    opts: ArmEmulatorOptions,
  ) {
    this.port = port;
    const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const pendingPolls = (): number => opts.lroPendingPolls ?? 1;
    const platformEnv = (): Record<string, string> =>
      typeof opts.sitePlatformEnv === 'function' ? opts.sitePlatformEnv() : (opts.sitePlatformEnv ?? {});
    this.runtime = new SiteRuntime({ platformEnv, log });
    this.world = {
      store: this.store,
      lro: new LroManager(pendingPolls),
      sites: this.sites,
      systemIdentity: (resourceId, type) =>
        (type === SITE_TYPE ? opts.sitePrincipalId?.(resourceId.split('/').pop() ?? '') : undefined) ?? randomUUID(),
      userAssignedIdentityCreated: (clientId, principalId) => opts.onUserAssignedIdentity?.(clientId, principalId),
      appSettingsChanged: (name) => {
        const site = this.sites.get(name);
        if (site?.deployed) this.runtime.restart(site);
      },
    };
    this.scm = new ScmHost({
      store: this.store,
      sites: this.sites,
      runtime: this.runtime,
      authenticate: (authorization) => authenticateArm(authorization, this.key),
      distLocalDir: opts.distLocalDir,
      indexEnv: (): Record<string, string> => {
        const path = platformEnv()['PATH'];
        return path === undefined ? {} : { PATH: path };
      },
      pendingPolls,
    });
  }

  /** Starts the emulator on 127.0.0.1 (`port` 0 or absent: any free port) with no vaults registered. */
  static async start(opts: ArmEmulatorOptions): Promise<ArmEmulator> {
    const server = createServer({ cert: opts.certPem, key: opts.keyPem });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
    const emulator = new ArmEmulator(server, tokenSecretBytes(opts.tokenSecret), port, opts);
    server.on('connection', (socket: Socket) => {
      emulator.sockets.add(socket);
      socket.once('close', () => emulator.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => emulator.onRequest(req, res));
    return emulator;
  }

  // ---------------------------------------------------------------- control API: vaults and role assignments

  /** Resource id of a vault, the same as `KeyVaultEmulator.resourceId`. */
  resourceId(vault: string): string {
    return vaultResourceId(vault);
  }

  /**
   * Registers a vault with the defaults (Allow, no IP/VNet rules, public access Enabled, soft delete on
   * with 90 days, purge protection off, RBAC mode on, no access policies, location `westeurope`) overridden by `opts`.
   * Registering a name again replaces its state; its role assignments stay.
   */
  addVault(name: string, opts: Partial<VaultState> = {}): void {
    if (!VAULT_NAME_RE.test(name)) throw new Error(`Invalid vault name: ${name}`);
    const key = name.toLowerCase();
    this.store.vaults.set(key, {
      name: key,
      state: mergeVaultState(cloneVaultState(DEFAULT_VAULT_STATE), opts),
      createdAt: new Date().toISOString(),
    });
  }

  /** Changes some settings of a registered vault; the others keep their values. */
  /**
   * Marks resource provider namespaces (e.g. `Microsoft.Web`) not registered, as in a fresh
   * subscription: creating their resources answers 409 `MissingSubscriptionRegistration` until a
   * `POST /subscriptions/{id}/providers/{namespace}/register`.
   */
  unregisterProviders(...namespaces: string[]): void {
    for (const ns of namespaces) this.store.unregisteredProviders.add(ns.toLowerCase());
  }

  setVault(name: string, patch: Partial<VaultState>): void {
    const v = this.vaultOrThrow(name);
    v.state = mergeVaultState(v.state, patch);
  }

  /** A copy of a registered vault's current settings (access policies added through ARM included). */
  getVault(name: string): VaultState {
    return cloneVaultState(this.vaultOrThrow(name).state);
  }

  /**
   * Assigns a role to a principal at the vault, its resource group or the subscription (inherited by
   * every vault), as a `ServicePrincipal` assignment. Returns the assignment name (a new GUID).
   */
  addRoleAssignment(vault: string, principalId: string, roleDefinitionGuid: string, scope: RoleAssignmentScope = 'vault'): string {
    this.vaultOrThrow(vault);
    const scopeId = scope === 'vault' ? this.resourceId(vault) : scope === 'resourceGroup' ? resourceGroupId() : subscriptionId();
    const name = randomUUID();
    const now = new Date().toISOString();
    this.store.assignments.push({
      name,
      principalId,
      roleDefinitionGuid: roleDefinitionGuid.toLowerCase(),
      scope: scopeId,
      principalType: 'ServicePrincipal',
      description: null,
      createdOn: now,
      updatedOn: now,
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
    for (let i = this.store.assignments.length - 1; i >= 0; i--) {
      const a = this.store.assignments[i];
      if (a && a.principalId.toLowerCase() === principalId.toLowerCase() && isAncestorOrSelf(a.scope, scope)) {
        this.store.assignments.splice(i, 1);
        removed++;
      }
    }
    return removed;
  }

  /** Every role assignment that applies to the vault (its own and inherited), oldest first. */
  roleAssignments(vault: string): EmulatedRoleAssignment[] {
    const scope = this.resourceId(this.vaultOrThrow(vault).name);
    return this.allRoleAssignments().filter((a) => isAncestorOrSelf(a.scope, scope));
  }

  /** Every role assignment, whatever its scope (made through ARM or {@link addRoleAssignment}), oldest first. */
  allRoleAssignments(): Array<EmulatedRoleAssignment & { principalType: string }> {
    return this.store.assignments.map(({ name, principalId, roleDefinitionGuid, scope, principalType }) => ({
      name,
      principalId,
      roleDefinitionGuid,
      scope,
      principalType,
    }));
  }

  // ---------------------------------------------------------------- control API: deployed resources and sites

  /** The stored JSON of any resource created through ARM (resource groups included), by id (case-insensitive). */
  resource(id: string): Json | undefined {
    const found = this.store.get(normalisePath(id));
    return found ? cloneJson(found.body) : undefined;
  }

  /** A site's app settings (a copy), or `undefined` for an unknown site. */
  appSettings(app: string): Record<string, string> | undefined {
    const site = this.sites.get(app);
    return site ? { ...site.appSettings } : undefined;
  }

  /** A site's configuration as `config/web` answers it (a copy), or `undefined` for an unknown site. */
  siteConfig(app: string): Record<string, unknown> | undefined {
    const site = this.sites.get(app);
    return site ? cloneJson(site.siteConfig) : undefined;
  }

  /** Whether a site allows basic publishing credentials on its SCM and FTP endpoints, or `undefined` for an unknown site. */
  basicPublishing(app: string): { scm: boolean; ftp: boolean } | undefined {
    const site = this.sites.get(app);
    return site ? { ...site.basicPublishing } : undefined;
  }

  /** A site's last successful package and publish count, or `undefined` for an unknown site. */
  deployedPackage(app: string): DeployedPackageInfo | undefined {
    const site = this.sites.get(app);
    if (!site) return undefined;
    return { files: site.deployed?.files, functions: site.deployed ? [...site.deployed.functions] : [], publishes: site.publishes };
  }

  /** The output (stdout and stderr, last few thousand characters) of a site's current host process. */
  siteOutput(app: string): string {
    return this.runtime.output(app);
  }

  // ---------------------------------------------------------------- control API: faults and counters

  /** Injects a fault into every following ARM request, or clears it (`null`). Hung requests stay hung until {@link stop}. */
  setFault(fault: ArmFault | null): void {
    this.fault = fault;
  }

  /** The next `times` (default 1) requests matching `failure` answer its ARM error, before anything else is checked. */
  injectFailure(failure: ArmInjectedFailure): void {
    this.failures.push({ ...failure, left: failure.times ?? 1 });
  }

  /** Drops every injected failure not yet used up. */
  clearInjectedFailures(): void {
    this.failures.length = 0;
  }

  /** Items per role-assignment page (default 100), so tests can make the SDK follow `nextLink`. */
  setPageSize(size: number): void {
    if (!Number.isInteger(size) || size < 1) throw new Error(`Page size must be a positive integer, got ${size}`);
    this.pageSize = size;
  }

  /** Requests received since start or {@link resetCounts} (authenticated or not, every host) matching `filter`. */
  requestCount(filter: ArmRequestCountFilter = {}): number {
    const method = filter.method?.toUpperCase();
    const path = typeof filter.path === 'string' ? normalisePath(filter.path).toLowerCase() : undefined;
    const regex = filter.path instanceof RegExp ? filter.path : undefined;
    const vault = filter.vault?.toLowerCase();
    const host = filter.host?.toLowerCase();
    return this.counts.filter(
      (c) =>
        (method === undefined || c.method === method) &&
        (path === undefined || c.path.toLowerCase() === path) &&
        (regex === undefined || regex.test(c.path)) &&
        (vault === undefined || c.vault === vault) &&
        (host === undefined || c.host === host) &&
        (filter.operation === undefined || c.operation === filter.operation),
    ).length;
  }

  /** Zeroes the request counters. */
  resetCounts(): void {
    this.counts.length = 0;
  }

  /** Stops listening, destroys every connection (hung ones included), stops every site and removes their packages. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await Promise.all([closed, this.runtime.stopAll(this.sites.all().flatMap((s) => (s.deployed ? [s.deployed.dir] : [])))]);
  }

  // ---------------------------------------------------------------- HTTP pipeline

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = normalisePath(q === -1 ? rawUrl : rawUrl.slice(0, q));
    const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
    const host = String(req.headers.host ?? 'management.azure.com').toLowerCase();
    const segments = segmentsOf(path);
    const scmSite = SCM_HOST_RE.exec(host)?.[1];
    const site = scmSite === undefined ? SITE_HOST_RE.exec(host)?.[1] : undefined;
    const route: RouteInfo =
      scmSite !== undefined
        ? { operation: /^\/api\/publish$/i.test(path) ? 'scm.publish' : 'scm.deployment', vault: undefined }
        : site !== undefined
          ? { operation: 'site', vault: undefined }
          : classify(method, segments);
    this.counts.push({ method, path, host: host.replace(/:443$/, ''), ...route });

    const injected = this.takeInjectedFailure(method, path);
    if (injected) {
      // Unsourced: reading the body before the error answer is modelled from client behaviour, not documented.
      // Read the body first, as the service does: an answer while a large upload is still being
      // sent would reset the connection, and the client would see a network error instead.
      req.resume();
      req.once('end', () =>
        sendArmError(res, method, new ArmError(injected.status, injected.code, injected.message, injected.headers ?? {})),
      );
      return;
    }
    if (scmSite !== undefined) {
      void this.scm.handle(scmSite, req, res, path);
      return;
    }
    if (site !== undefined) {
      this.runtime.serve(this.sites.get(site), req, res, path).catch((err: unknown) => sendArmError(res, method, err));
      return;
    }
    // A hang is a network fault: it precedes authentication, so even unauthenticated requests stall.
    if (this.fault && 'kind' in this.fault) return;
    this.handleArm(req, method, path, segments, query, route).then(
      (answer) => sendAnswer(res, method, answer),
      (err: unknown) => sendArmError(res, method, err),
    );
  }

  private async handleArm(
    req: IncomingMessage,
    method: string,
    path: string,
    segments: string[],
    query: URLSearchParams,
    route: RouteInfo,
  ) {
    const caller = await authenticateArm(req.headers.authorization, this.key);
    const body = method === 'PUT' || method === 'PATCH' || method === 'POST' ? parseJsonBody(await readArmBody(req)) : undefined;
    if (this.fault && 'status' in this.fault) throw faultError(this.fault, method, path, route, segments, caller);
    const apiVersion = query.get('api-version');
    // Public report: https://github.com/Azure/azure-dev/issues/3914 (400 MissingApiVersionParameter, this message)
    if (!apiVersion) {
      throw new ArmError(
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      );
    }
    // Public report: https://github.com/Azure/apiops/issues/508 (400 InvalidApiVersionParameter; Azure lists the supported versions)
    if (!API_VERSION_RE.test(apiVersion)) {
      throw new ArmError(
        400,
        'InvalidApiVersionParameter',
        `The api-version '${apiVersion}' is invalid. The supported versions are 'YYYY-MM-DD[-preview]'.`,
      );
    }
    return routeArm(this.world, { method, path, segments, query, apiVersion, caller, body }, this.pageSize);
  }

  private takeInjectedFailure(method: string, path: string): ArmInjectedFailure | undefined {
    const index = this.failures.findIndex((f) => (f.method === undefined || f.method.toUpperCase() === method) && f.path.test(path));
    const found = this.failures[index];
    if (!found) return undefined;
    if (--found.left <= 0) this.failures.splice(index, 1);
    return found;
  }

  private vaultOrThrow(name: string) {
    const v = this.store.vaults.get(name.toLowerCase());
    if (!v) throw new Error(`Unknown vault: ${name} (register it with addVault first)`);
    return v;
  }
}
