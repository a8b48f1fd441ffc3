import type { VaultSettings } from '../config';
import { VaultError } from '../errors';
import { mapLimit } from '../mapLimit';
import type { VaultGateway } from '../secrets/vaultGateway';
import type { HealthCause, HealthCheckResult, HealthStatus } from './healthReport';
import type { RateLimiter } from './rateLimiter';
import { remedyFor } from './remedies';

/** Probes of one vault run this many at once (with the rate limit, far under Key Vault's limits). */
export const PROBE_CONCURRENCY = 4;
/** How long one probe may take. */
export const PROBE_TIMEOUT_MS = 5_000;

export interface DataPlaneOptions {
  readonly rate: RateLimiter;
  /** Past this (performance.now()), probes not started are reported as timed out. */
  readonly deadline: number;
  readonly warningDays: number;
  readonly now: () => number;
}

/**
 * With the function app's own identity: can it list secrets, and get each secret the policy and
 * the consumers name literally; and when does each of those expire. Every failure has a cause
 * and a remedy.
 */
export async function dataPlaneChecks(
  vault: VaultSettings,
  gateway: VaultGateway,
  secrets: readonly string[],
  options: DataPlaneOptions,
): Promise<HealthCheckResult[]> {
  const results: HealthCheckResult[] = [];
  results.push(await probe(vault, 'listSecrets', null, options, async () => gateway.canList(PROBE_TIMEOUT_MS)));

  const perSecret = await mapLimit(secrets, PROBE_CONCURRENCY, async (name): Promise<HealthCheckResult[]> => {
    let expiresOn: string | null | undefined;
    const get = await probe(vault, 'getSecret', name, options, async () => {
      try {
        const secret = await gateway.getSecret(name, undefined, PROBE_TIMEOUT_MS);
        expiresOn = secret.expiresOn;
        // The value is not needed, only that it could be read; it is dropped here.
      } catch (err: unknown) {
        if (err instanceof VaultError && err.vaultCause === 'SecretNotFound' && (await gateway.isSoftDeleted(name, PROBE_TIMEOUT_MS))) {
          throw new SoftDeleted();
        }
        throw err;
      }
    });
    return expiresOn === undefined ? [get] : [get, expiry(vault, name, expiresOn, options)];
  });
  results.push(...perSecret.flat());
  return results;
}

class SoftDeleted extends Error {}

async function probe(
  vault: VaultSettings,
  check: 'listSecrets' | 'getSecret',
  target: string | null,
  options: DataPlaneOptions,
  run: () => Promise<void>,
): Promise<HealthCheckResult> {
  if (performance.now() > options.deadline) return failed(vault, check, target, 'Timeout', 0);
  await options.rate.take();
  const started = performance.now();
  try {
    await run();
    return { check, target, status: 'ok', cause: null, remedy: null, durationMs: elapsed(started) };
  } catch (err: unknown) {
    return failed(vault, check, target, causeOf(err), elapsed(started));
  }
}

function causeOf(err: unknown): HealthCause {
  if (err instanceof SoftDeleted) return 'SecretSoftDeleted';
  if (!(err instanceof VaultError)) return 'VaultUnreachable';
  switch (err.vaultCause) {
    case 'Throttled':
      return 'Timeout';
    default:
      return err.vaultCause;
  }
}

function expiry(vault: VaultSettings, name: string, expiresOn: string | null, options: DataPlaneOptions): HealthCheckResult {
  if (expiresOn === null) return result(vault, 'expiry', name, 'warning', 'NoExpiry');
  const left = Date.parse(expiresOn) - options.now();
  if (left <= 0) return result(vault, 'expiry', name, 'failed', 'Expired');
  if (left <= options.warningDays * 86_400_000) return result(vault, 'expiry', name, 'warning', 'ExpiresSoon');
  return { check: 'expiry', target: name, status: 'ok', cause: null, remedy: null, durationMs: 0 };
}

function failed(
  vault: VaultSettings,
  check: 'listSecrets' | 'getSecret',
  target: string | null,
  cause: HealthCause,
  durationMs: number,
): HealthCheckResult {
  return { ...result(vault, check, target, 'failed', cause), durationMs };
}

function result(
  vault: VaultSettings,
  check: HealthCheckResult['check'],
  target: string | null,
  status: HealthStatus,
  cause: HealthCause,
): HealthCheckResult {
  return { check, target, status, cause, remedy: remedyFor(cause, vault.alias, target), durationMs: 0 };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
