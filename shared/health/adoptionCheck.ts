import { staleReaders, staleRemedy } from '../adoption/adoptionRules';
import type { AdoptionRow } from '../adoption/adoptionTypes';
import type { VaultSettings } from '../config';
import { mapLimit } from '../mapLimit';
import type { VaultGateway } from '../secrets/vaultGateway';
import { PROBE_CONCURRENCY, PROBE_TIMEOUT_MS } from './dataPlaneChecks';
import type { HealthCheckResult } from './healthReport';
import type { RateLimiter } from './rateLimiter';

export interface AdoptionCheckOptions {
  readonly rate: RateLimiter;
  /** Past this (performance.now()), secrets not yet checked are left out. */
  readonly deadline: number;
  /** `ADOPTION_WARNING_HOURS`. */
  readonly warningHours: number;
  readonly now: () => number;
}

/**
 * Check `adoption` of one vault, for every secret with adoption rows (whatever the policy names):
 * the newest version is read (with the function app's identity, its value dropped) and each
 * caller's row compared with it (adoptionRules.ts `staleReaders`). A warning `StaleVersionInUse`
 * names the callers still on an older version `ADOPTION_WARNING_HOURS` after the newest appeared.
 *
 * When the newest version appeared is its `updatedOn`: Key Vault sets it when the version is created,
 * and only a later change of that version's own attributes moves it (which can only delay a warning).
 * A secret that cannot be read now is `skipped` here: `getSecret` reports why for the names the
 * settings reference.
 */
export async function adoptionChecks(
  vault: VaultSettings,
  gateway: VaultGateway,
  rows: readonly AdoptionRow[],
  options: AdoptionCheckOptions,
): Promise<HealthCheckResult[]> {
  const bySecret = new Map<string, AdoptionRow[]>();
  for (const row of rows) {
    if (row.vault !== vault.alias) continue;
    const key = row.secret.toLowerCase();
    const group = bySecret.get(key);
    if (group) group.push(row);
    else bySecret.set(key, [row]);
  }
  const groups = [...bySecret.values()].sort((a, b) => (a[0]?.secret ?? '').localeCompare(b[0]?.secret ?? ''));
  const results = await mapLimit(groups, PROBE_CONCURRENCY, async (group): Promise<HealthCheckResult | undefined> => {
    const name = group[0]?.secret ?? '';
    if (performance.now() > options.deadline) return undefined;
    await options.rate.take();
    const started = performance.now();
    let latest: { version: string; createdAt: string } | undefined;
    try {
      const secret = await gateway.getSecret(name, undefined, PROBE_TIMEOUT_MS);
      // The value is not needed, only the newest version and when it appeared; it is dropped here.
      if (secret.version && secret.updatedOn) latest = { version: secret.version, createdAt: secret.updatedOn };
    } catch {
      latest = undefined;
    }
    const durationMs = Math.round(performance.now() - started);
    if (!latest) return { check: 'adoption', target: name, status: 'skipped', cause: null, remedy: null, durationMs };
    const stale = staleReaders(group, latest, options.warningHours, options.now());
    if (stale.length === 0) return { check: 'adoption', target: name, status: 'ok', cause: null, remedy: null, durationMs };
    return {
      check: 'adoption',
      target: name,
      status: 'warning',
      cause: 'StaleVersionInUse',
      remedy: staleRemedy(name, vault.alias, latest.version, stale),
      durationMs,
    };
  });
  return results.filter((r): r is HealthCheckResult => r !== undefined);
}
