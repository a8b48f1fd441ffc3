import type { RotationRecord } from '../rotation/rotationTypes';
import type { HealthCheckResult } from './healthReport';

/** Where the health check job finds rotations: it advances them first, then lists the active ones. */
export interface RotationSource {
  /** Runs every step of every active rotation that can run now (the runner's `advanceAll`). */
  advanceAll(): Promise<unknown>;
  /** Every active rotation (failed ones included) after advancing. */
  listActive(): Promise<RotationRecord[]>;
}

/**
 * Check `rotation` of one vault (docs/operations.md, "Health check"), one per active rotation,
 * targeting its secret: `ok` while it progresses (its state, the callers holding retirement back and
 * the deadline are in the rotate route's answer and `broker rotate`); `failed`, cause
 * `RotationFailed`, when a step could not proceed: the remedy names the step, the service and its
 * error code (e.g. Graph's `Authorization_RequestDenied`) and what to do. `'unreadable'`: the
 * rotation store could not be read, one `skipped` check without a target.
 */
export function rotationChecks(vault: string, records: readonly RotationRecord[] | 'unreadable'): HealthCheckResult[] {
  if (records === 'unreadable') return [{ check: 'rotation', target: null, status: 'skipped', cause: null, remedy: null, durationMs: 0 }];
  return records
    .filter((r) => r.vault === vault && r.state !== 'retired')
    .sort((a, b) => a.secret.localeCompare(b.secret))
    .map((r): HealthCheckResult => {
      const f = r.failure;
      if (r.state !== 'failed' || !f)
        return { check: 'rotation', target: r.secret, status: 'ok', cause: null, remedy: null, durationMs: 0 };
      const service = f.service === 'graph' ? 'Microsoft Graph' : f.service === 'keyVault' ? 'Key Vault' : 'the broker';
      return {
        check: 'rotation',
        target: r.secret,
        status: 'failed',
        cause: 'RotationFailed',
        remedy: `Rotation ${r.id} stopped at step ${f.step}: ${service} answered ${f.code}${f.status ? ` (HTTP ${f.status})` : ''}. ${f.remedy} The next health check run resumes it.`,
        durationMs: 0,
      };
    });
}
