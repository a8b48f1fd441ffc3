import type { AdoptionRow } from '../adoption/adoptionTypes';
import type { AppConfig, VaultSettings } from '../config';
import { DEFAULT_VAULT_ALIAS } from '../config';
import type { VaultGateway } from '../secrets/vaultGateway';
import { adoptionChecks } from './adoptionCheck';
import { dataPlaneChecks, PROBE_TIMEOUT_MS } from './dataPlaneChecks';
import type { HealthCheckResult, HealthReport, VaultHealth } from './healthReport';
import { worstStatus } from './healthReport';
import type { ManagementReader } from './managementChecks';
import { managementChecks } from './managementChecks';
import { RateLimiter } from './rateLimiter';
import type { RotationRecord } from '../rotation/rotationTypes';
import { rotationChecks } from './rotationCheck';

/** The whole run's time budget: probes not started by then are reported as timed out. */
export const HEALTH_RUN_BUDGET_MS = 45_000;
/**
 * Key Vault requests per second per vault at most: with the live traffic the broker itself causes,
 * far under the service limit of 4,000 per 10 s.
 */
export const PROBES_PER_SECOND = 200;

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

/**
 * The secrets the settings name literally, per vault: `allow` patterns without `*` in the access
 * policy, consumers' secret patterns without `*`, and consumers' signing keys. These are what
 * callers will ask for, so these are what the check reads.
 */
export function referencedSecrets(config: AppConfig): Map<string, string[]> {
  const byVault = new Map<string, Set<string>>();
  const add = (pattern: string): void => {
    if (pattern.includes('*')) return;
    const slash = pattern.indexOf('/');
    const vault = slash > 0 ? pattern.slice(0, slash) : DEFAULT_VAULT_ALIAS;
    const name = slash > 0 ? pattern.slice(slash + 1) : pattern;
    if (!config.vaults.has(vault) || !SECRET_NAME.test(name)) return;
    const names = byVault.get(vault) ?? new Set<string>();
    // Key Vault names ignore case: one probe per secret.
    if (![...names].some((n) => n.toLowerCase() === name.toLowerCase())) names.add(name);
    byVault.set(vault, names);
  };
  for (const caller of config.policy.callers) caller.allow.forEach(add);
  for (const consumer of config.consumers) {
    consumer.secrets.forEach(add);
    add(consumer.signingSecret);
  }
  return new Map([...byVault].map(([vault, names]) => [vault, [...names].sort()]));
}

/**
 * Checks every vault at once (a vault that hangs does not stall the others), each within the run's
 * budget and a per-vault request rate, and assembles the report of CONTRACT.md.
 */
export async function runHealthCheck(deps: {
  config: AppConfig;
  gateways: ReadonlyMap<string, VaultGateway>;
  management: ManagementReader | undefined;
  /** Version adoption (check `adoption`); none: the check is left out. */
  adoption?: AdoptionSource | undefined;
  /** Active rotations (check `rotation`), `'unreadable'` when their store could not be read; none: the check is left out. */
  rotations?: readonly RotationRecord[] | 'unreadable' | undefined;
  now?: () => number;
  budgetMs?: number;
}): Promise<HealthReport> {
  const now = deps.now ?? Date.now;
  const startedAt = new Date(now());
  const started = performance.now();
  const deadline = started + (deps.budgetMs ?? HEALTH_RUN_BUDGET_MS);
  const referenced = referencedSecrets(deps.config);
  const adoption = await adoptionRowsOf(deps.adoption);
  const vaults = await Promise.all(
    [...deps.config.vaults.values()].map(async (vault) => {
      const checked = await checkVault(vault, deps, referenced.get(vault.alias) ?? [], adoption, deadline, now);
      if (!deps.rotations) return checked;
      const checks = [...checked.checks, ...rotationChecks(vault.alias, deps.rotations)];
      return { ...checked, status: worstStatus(checks.map((c) => c.status)), checks };
    }),
  );
  return {
    status: worstStatus(vaults.map((v) => v.status)),
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - started),
    vaults,
  };
}

/** Where the `adoption` check reads what callers read (the runtime's adoption tracker). */
export interface AdoptionSource {
  readAll(): Promise<AdoptionRow[]>;
}

/** Every adoption row, or undefined when there is no source or the store cannot be read (then the check is `skipped`). */
async function adoptionRowsOf(source: AdoptionSource | undefined): Promise<AdoptionRow[] | 'unreadable' | undefined> {
  if (!source) return undefined;
  try {
    return await source.readAll();
  } catch {
    return 'unreadable';
  }
}

async function checkVault(
  vault: VaultSettings,
  deps: { config: AppConfig; gateways: ReadonlyMap<string, VaultGateway>; management: ManagementReader | undefined },
  secrets: readonly string[],
  adoption: AdoptionRow[] | 'unreadable' | undefined,
  deadline: number,
  now: () => number,
): Promise<VaultHealth> {
  const gateway = deps.gateways.get(vault.alias);
  const checks: HealthCheckResult[] = [];
  const [data, management] = await Promise.all([
    gateway
      ? dataPlaneChecks(vault, gateway, secrets, {
          rate: new RateLimiter(PROBES_PER_SECOND),
          deadline,
          warningDays: deps.config.expiryWarningDays,
          now,
        })
      : Promise.resolve([]),
    managementChecks(vault, deps.management, PROBE_TIMEOUT_MS),
  ]);
  checks.push(...data, ...management);
  if (adoption === 'unreadable') {
    checks.push({ check: 'adoption', target: null, status: 'skipped', cause: null, remedy: null, durationMs: 0 });
  } else if (adoption && gateway) {
    const options = { rate: new RateLimiter(PROBES_PER_SECOND), deadline, warningHours: deps.config.adoptionWarningHours, now };
    checks.push(...(await adoptionChecks(vault, gateway, adoption, options)));
  }
  return { vault: vault.alias, vaultUri: vault.uri, status: worstStatus(checks.map((c) => c.status)), checks };
}
