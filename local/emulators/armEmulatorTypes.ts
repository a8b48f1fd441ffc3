/** The ARM emulator's public types and constants (re-exported by armEmulator.ts). */
import { randomUUID } from 'node:crypto';
import { ArmError, type Caller } from './armCore';
import type { ArmOperation, RouteInfo } from './armRouter';
import type { IndexedFunction } from './siteState';
import { EMULATOR_SUBSCRIPTION_ID } from './keyVaultTypes';

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

/** A failure the emulator injects into every ARM request until `ArmEmulator.setFault` is called with `null`. */
export type ArmFault =
  /**
   * `403` = `AuthorizationFailed` (the caller lacks Reader), `500` = `InternalServerError`,
   * `503` = `ServiceUnavailable` with `Retry-After: retryAfterSeconds` (default 0).
   */
  | { status: 403 | 500 | 503; retryAfterSeconds?: number }
  /** Accepts the request and never answers; `ArmEmulator.stop` destroys the connection. */
  | { kind: 'hang' };

/** One ARM error answered to the next `times` matching requests, see `ArmEmulator.injectFailure`. */
export interface ArmInjectedFailure {
  /** Only this method (any when absent). */
  method?: string;
  /** Matched against the path without the query string (ARM, SCM and site hosts alike). */
  path: RegExp;
  status: number;
  code: string;
  message: string;
  /** How many requests fail (default 1). */
  times?: number;
  /** Extra response headers, e.g. `{ 'Retry-After': '0' }`. */
  headers?: Record<string, string>;
}

/** Where a role assignment is made; the wider ones are inherited by every vault below them. */
export type RoleAssignmentScope = 'vault' | 'resourceGroup' | 'subscription';

/** Filter of `ArmEmulator.requestCount`; every given field must match. */
export interface ArmRequestCountFilter {
  method?: string;
  operation?: ArmOperation;
  /** The vault the request is about (its own resource or the vault scope of a listing). */
  vault?: string;
  /** Path without query string: a string compared case-insensitively (ARM paths are), or a RegExp tested on it. */
  path?: string | RegExp;
  /** `management.azure.com`, `<app>.scm.azurewebsites.net`, `<app>.azurewebsites.net` (case-insensitive). */
  host?: string;
}

export interface ArmEmulatorOptions {
  certPem: string;
  keyPem: string;
  /** The managed-identity endpoint's HS256 secret: ARM and SCM take only its tokens. */
  tokenSecret: Uint8Array | string;
  port?: number;
  /** The principal id of a site's system-assigned identity (by site name); a random GUID when absent or `undefined`. */
  sitePrincipalId?: (siteName: string) => string | undefined;
  /** The repository's compiled local host (`dist/local`), copied into each published package so the site runs. */
  distLocalDir?: string;
  /**
   * The platform environment of every site (IDENTITY_ENDPOINT, IDENTITY_HEADER, HTTPS_PROXY, NO_PROXY,
   * NODE_EXTRA_CA_CERTS, PATH), or a function giving it when a site starts; the emulator adds
   * WEBSITE_HOSTNAME and WEBSITE_SITE_NAME.
   */
  sitePlatformEnv?: Record<string, string> | (() => Record<string, string>);
  /** Polls each long-running operation and deployment stays in progress for (default 1). */
  lroPendingPolls?: number;
  /** Where the emulator's log lines go (a site host that exits, …); default standard error. */
  log?: (line: string) => void;
  /** A user-assigned identity was created through ARM: make its tokens available (the managed-identity endpoint). */
  onUserAssignedIdentity?: (clientId: string, principalId: string) => void;
}

/** A site's last successful package, and its publishes. */
export interface DeployedPackageInfo {
  /** The files of the last successful publish, by path; `undefined` before one succeeded. */
  files: Map<string, Uint8Array> | undefined;
  /** The functions that package registers. */
  functions: IndexedFunction[];
  /** Publishes accepted for the site (failed deployments included; refused 403s not). */
  publishes: number;
}

/** The error an {@link ArmFault} with a status answers. */
export function faultError(
  fault: { status: 403 | 500 | 503; retryAfterSeconds?: number },
  method: string,
  path: string,
  route: RouteInfo,
  segments: string[],
  caller: Caller,
): ArmError {
  if (fault.status === 403) {
    const listing = route.operation === 'roleAssignments.list';
    const action = listing
      ? 'Microsoft.Authorization/roleAssignments/read'
      : route.operation === 'vaults.get'
        ? 'Microsoft.KeyVault/vaults/read'
        : `${method} ${path}`;
    const scope = listing ? `/${segments.slice(0, -3).join('/')}` : path;
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
