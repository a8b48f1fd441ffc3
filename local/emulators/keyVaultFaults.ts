// Failures the Key Vault emulator injects on purpose: the faults a test sets (latency, resets, hangs,
// error statuses, firewall / RBAC / access-policy refusals), the per-vault rate limit, and their counts.
import type { ServerResponse } from 'node:http';
import { type Caller, type SecretRole, policyPermission, rbacAction, roleAllows } from './keyVaultAuth';
import { HttpError } from './keyVaultErrors';
import { sendError } from './keyVaultHttp';
import type { InjectedCounts, KeyVaultFault, KeyVaultRateLimit } from './keyVaultTypes';
import { EMULATOR_ISSUER } from './managedIdentityEndpoint';

/** A data-plane role a principal holds on a vault (see {@link FaultInjector.setRoleAssignments}). */
export interface SecretRoleAssignment {
  /** Object id (`oid`) of the principal, e.g. a managed identity's principal id. */
  principalId: string;
  role: SecretRole;
}

interface ActiveFault {
  fault: KeyVaultFault;
  vault: string | undefined;
  remaining: number | undefined;
}

/** Key Vault's throttling message; the service names a reason after it. */
const THROTTLED_MESSAGE =
  'Request was not processed because too many requests were received. Reason: A generic Key Vault throttling condition was hit.';
const NETWORK_KINDS: ReadonlySet<KeyVaultFault['kind']> = new Set(['reset', 'hang']);
const HTTP_KINDS: ReadonlySet<KeyVaultFault['kind']> = new Set(['status', 'firewall', 'rbac', 'policy']);

/** The faults and rate limit in force, the random source of the probabilistic ones, and what they refused. */
export class FaultInjector {
  private readonly faults: ActiveFault[] = [];
  private random: () => number = Math.random;
  private rateLimit: KeyVaultRateLimit | undefined;
  /** Per vault: when each request admitted within the current window arrived, oldest first. */
  private readonly admitted = new Map<string, number[]>();
  private injected: InjectedCounts = { throttledByLimit: 0, throttledByFault: 0, statusFaults: 0, resets: 0 };
  /** Per vault (lower-cased): the role assignments checked for each request, once a test set them. */
  private readonly roles = new Map<string, SecretRoleAssignment[]>();

  /**
   * Checks Azure RBAC for one vault (lower-cased): from now on a request is served only when its caller
   * (`oid`) holds a role that grants the request's data action; `null` turns the check off again (the
   * default: every authenticated caller may do everything).
   */
  setRoleAssignments(vault: string, assignments: readonly SecretRoleAssignment[] | null): void {
    if (assignments === null) this.roles.delete(vault);
    else
      this.roles.set(
        vault,
        assignments.map((a) => ({ ...a })),
      );
  }

  /** Sets a fault for one vault (lower-cased) or all (undefined), replacing one of the same kind and scope. */
  setFault(fault: KeyVaultFault, scope: string | undefined): void {
    const existing = this.faults.findIndex((f) => f.fault.kind === fault.kind && f.vault === scope);
    if (existing !== -1) this.faults.splice(existing, 1);
    const times = 'times' in fault ? fault.times : undefined;
    if (times !== undefined && times <= 0) return;
    this.faults.push({ fault, vault: scope, remaining: times });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Removes the fault of this kind set for this scope (one vault, lower-cased, or all: undefined), if any. */
  clearFault(kind: KeyVaultFault['kind'], scope: string | undefined): void {
    const existing = this.faults.findIndex((f) => f.fault.kind === kind && f.vault === scope);
    if (existing !== -1) this.faults.splice(existing, 1);
  }

  /** @throws Error when `requests` or `windowMs` is not a positive integer. */
  setRateLimit(limit: KeyVaultRateLimit | null): void {
    if (
      limit !== null &&
      (!Number.isInteger(limit.requests) || limit.requests <= 0 || !Number.isInteger(limit.windowMs) || limit.windowMs <= 0)
    ) {
      throw new Error('setRateLimit: requests and windowMs must be positive integers');
    }
    this.rateLimit = limit ?? undefined;
    this.admitted.clear();
  }

  setRandomSource(random: () => number): void {
    this.random = random;
  }

  injectedCounts(): InjectedCounts {
    return { ...this.injected };
  }

  resetCounts(): void {
    this.injected = { throttledByLimit: 0, throttledByFault: 0, statusFaults: 0, resets: 0 };
  }

  /** The delay of a request to `vault`: the longest matching `latency` fault, 0 when none. */
  latencyFor(vault: string): number {
    let ms = 0;
    for (const f of this.faults) {
      if (f.fault.kind === 'latency' && (f.vault === undefined || f.vault === vault)) ms = Math.max(ms, f.fault.ms);
    }
    return ms;
  }

  /** The network fault (`reset` or `hang`) that hits this request, if any; a reset is counted. */
  takeNetworkFault(vault: string): 'reset' | 'hang' | undefined {
    const network = this.takeFault(vault, NETWORK_KINDS);
    if (network?.kind === 'reset') {
      this.injected.resets++;
      return 'reset';
    }
    return network?.kind === 'hang' ? 'hang' : undefined;
  }

  /**
   * Refuses an authenticated request on purpose, first by the rate limit, then by an HTTP fault:
   * answers it, counts it and returns true; false lets the request through.
   */
  refuse(res: ServerResponse, vault: string, method: string, path: string, caller: Caller): boolean {
    const limited = this.overLimit(vault);
    if (limited !== undefined) {
      this.injected.throttledByLimit++;
      sendError(res, new HttpError(429, 'Throttled', THROTTLED_MESSAGE), limited);
      return true;
    }
    const fault = this.takeFault(vault, HTTP_KINDS);
    if (fault?.kind === 'status') {
      if (fault.status === 429) this.injected.throttledByFault++;
      else this.injected.statusFaults++;
    }
    if (fault) {
      sendFault(res, fault, vault, method, path, caller);
      return true;
    }
    return this.refuseByRole(res, vault, method, path, caller);
  }

  /**
   * Learn: "Provide access to Key Vault keys, certificates, and secrets with Azure role-based access control":
   * with RBAC, a data-plane request is allowed only when a role assignment of the caller grants its data
   * action (Secrets User: getSecret and readMetadata; Secrets Officer: secrets/*, see keyVaultAuth.ts);
   * otherwise 403 `Forbidden` with inner code `ForbiddenByRbac` (body: see {@link rbacRefusal}).
   */
  private refuseByRole(res: ServerResponse, vault: string, method: string, path: string, caller: Caller): boolean {
    const assignments = this.roles.get(vault);
    if (!assignments) return false;
    const action = rbacAction(method, path);
    const oid = caller.oid.toLowerCase();
    if (assignments.some((a) => a.principalId.toLowerCase() === oid && roleAllows(a.role, action))) return false;
    sendError(res, rbacRefusal(vault, path, caller, action));
    return true;
  }

  /**
   * Admits a request under the rate limit (undefined), or returns the extra headers of its 429:
   * `Retry-After` when the limit sends one.
   */
  private overLimit(vault: string): Record<string, string> | undefined {
    const limit = this.rateLimit;
    if (!limit) return undefined;
    const now = (limit.now ?? Date.now)();
    let times = this.admitted.get(vault);
    if (!times) this.admitted.set(vault, (times = []));
    let expired = 0;
    while (expired < times.length && (times[expired] ?? 0) <= now - limit.windowMs) expired++;
    if (expired > 0) times.splice(0, expired);
    if (times.length < limit.requests) {
      times.push(now);
      return undefined;
    }
    const send = limit.retryAfter === 'always' || (limit.retryAfter === 'sometimes' && this.random() < 0.5);
    if (!send) return {};
    const freeInMs = (times[0] ?? now) + limit.windowMs - now;
    return { 'Retry-After': String(Math.max(1, Math.ceil(freeInMs / 1000))) };
  }

  /** Finds the first matching fault of the given kinds and consumes one of its `times`. */
  private takeFault(vault: string, kinds: ReadonlySet<KeyVaultFault['kind']>): KeyVaultFault | undefined {
    if (this.faults.length === 0) return undefined;
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i] as ActiveFault;
      if (!kinds.has(f.fault.kind) || (f.vault !== undefined && f.vault !== vault)) continue;
      const probability = 'probability' in f.fault ? f.fault.probability : undefined;
      if (probability !== undefined && !(this.random() < probability)) continue;
      if (f.remaining !== undefined) {
        f.remaining--;
        if (f.remaining <= 0) this.faults.splice(i, 1);
      }
      return f.fault;
    }
    return undefined;
  }
}

/**
 * Key Vault's 403 for a caller without a role granting `action`. Public reports: the whole body with inner code
 * ForbiddenByRbac, https://github.com/piyushsachdeva/Terraform_AKS/issues/2 (getSecret/action); a write refused,
 * https://github.com/Azure/Commercial-Marketplace-SaaS-Accelerator/issues/710 (setSecret/action, `Assignment: (not found)`).
 */
function rbacRefusal(vault: string, path: string, caller: Caller, action: string): HttpError {
  const who = `appid=${caller.appid};oid=${caller.oid};iss=${EMULATOR_ISSUER}`;
  return new HttpError(
    403,
    'Forbidden',
    `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: ${who}\r\nAction: '${action}'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/local/providers/microsoft.keyvault/vaults/${vault}${path.toLowerCase()}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: ${vault};location=local\r\n`,
    'ForbiddenByRbac',
  );
}

/** Answers an HTTP fault as the service would: its status and error body, or a 403 naming the caller and what it lacked. */
function sendFault(res: ServerResponse, fault: KeyVaultFault, vault: string, method: string, path: string, caller: Caller): void {
  const who = `appid=${caller.appid};oid=${caller.oid};iss=${EMULATOR_ISSUER}`;
  const where = `Vault: ${vault};location=local`;
  switch (fault.kind) {
    case 'status': {
      const extra: Record<string, string> = {};
      // A 429 carries Retry-After: 1 unless the fault names another value, or null for none.
      const retryAfter = fault.retryAfterSeconds === null ? undefined : (fault.retryAfterSeconds ?? (fault.status === 429 ? 1 : undefined));
      if (retryAfter !== undefined) extra['Retry-After'] = String(retryAfter);
      const [code, message] =
        fault.status === 429
          ? ['Throttled', THROTTLED_MESSAGE]
          : fault.status === 503
            ? ['ServiceUnavailable', 'The service is temporarily unavailable. Please retry later.']
            : ['InternalServerError', 'An unexpected error occurred while processing the request.'];
      return sendError(res, new HttpError(fault.status, code, message), extra);
    }
    case 'firewall':
      return sendError(
        res,
        new HttpError(
          403,
          'Forbidden',
          `Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\nCaller: ${who}\r\n${where}`,
          'ForbiddenByFirewall',
        ),
      );
    case 'rbac':
      return sendError(res, rbacRefusal(vault, path, caller, rbacAction(method, path)));
    case 'policy':
      return sendError(
        res,
        new HttpError(
          403,
          'Forbidden',
          `The user, group or application '${who}' does not have secrets ${policyPermission(method, path)} permission on key vault '${vault};location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`,
          'ForbiddenByPolicy',
        ),
      );
    default:
      return sendError(res, new HttpError(500, 'InternalServerError', `Unexpected fault ${fault.kind}`));
  }
}
