/** A check's or a vault's state (docs/operations.md, "Health check"). */
export const HEALTH_STATUSES = ['ok', 'warning', 'failed', 'skipped'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export const HEALTH_CHECKS = [
  'listSecrets',
  'getSecret',
  'expiry',
  'firewall',
  'publicNetworkAccess',
  'softDelete',
  'purgeProtection',
  'reader',
  'location',
  'adoption',
  'rotation',
] as const;
export type HealthCheckName = (typeof HEALTH_CHECKS)[number];

export const HEALTH_CAUSES = [
  'ForbiddenByFirewall',
  'ForbiddenByRbac',
  'ForbiddenByPolicy',
  'SecretNotFound',
  'SecretDisabled',
  'SecretSoftDeleted',
  'VaultUnreachable',
  'TokenUnavailable',
  'Timeout',
  'ExpiresSoon',
  'Expired',
  'NoExpiry',
  'FirewallNotAsExpected',
  'PublicAccessNotAsExpected',
  'SoftDeleteOff',
  'PurgeProtectionOff',
  'ReaderPermissionMissing',
  'LocationNotAsExpected',
  'ManagementUnavailable',
  'StaleVersionInUse',
  'RotationFailed',
] as const;
export type HealthCause = (typeof HEALTH_CAUSES)[number];

/** One check of one vault. `cause` and `remedy` are null when ok. */
export interface HealthCheckResult {
  readonly check: HealthCheckName;
  /** The secret or principal checked, where there is one. */
  readonly target: string | null;
  readonly status: HealthStatus;
  readonly cause: HealthCause | null;
  /** One sentence an admin can act on. */
  readonly remedy: string | null;
  readonly durationMs: number;
}

export interface VaultHealth {
  readonly vault: string;
  readonly vaultUri: string;
  readonly status: HealthStatus;
  readonly checks: readonly HealthCheckResult[];
}

export interface HealthReport {
  readonly status: HealthStatus;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly vaults: readonly VaultHealth[];
}

const RANK: Record<HealthStatus, number> = { skipped: 0, ok: 0, warning: 1, failed: 2 };

/** The worst of some statuses, `skipped` counting as `ok` (an empty list is ok). */
export function worstStatus(statuses: readonly HealthStatus[]): HealthStatus {
  let worst: HealthStatus = 'ok';
  for (const status of statuses) if (RANK[status] > RANK[worst]) worst = status;
  return worst;
}
