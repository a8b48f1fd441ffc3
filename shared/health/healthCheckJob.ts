import type { AppConfig } from '../config';
import type { ConsumerDirectory } from '../notify/consumerDirectory';
import { deliverNotifications } from '../notify/deliverNotifications';
import type { DeliveryLedger } from '../notify/deliveryLedger';
import type { EventGridTopicPublisher } from '../notify/eventGridTopic';
import { healthNotification } from '../notify/notification';
import { pendingNotifications } from '../notify/pendingNotifications';
import type { sendWebhook } from '../notify/sendWebhook';
import type { SecretResolver } from '../secrets/secretResolver';
import type { VaultGateway } from '../secrets/vaultGateway';
import type { Telemetry } from '../telemetry';
import type { HealthReport, VaultHealth } from './healthReport';
import type { HealthReportStore, VaultHealthState } from './healthReportStore';
import type { ManagementReader } from './managementChecks';
import type { AdoptionSource } from './runHealthCheck';
import { HEALTH_RUN_BUDGET_MS, runHealthCheck } from './runHealthCheck';
import type { RotationRecord } from '../rotation/rotationTypes';
import type { RotationSource } from './rotationCheck';

export interface HealthJobDeps {
  readonly config: AppConfig;
  readonly gateways: ReadonlyMap<string, VaultGateway>;
  readonly management: ManagementReader | undefined;
  readonly store: HealthReportStore;
  readonly consumers: ConsumerDirectory;
  readonly ledger: DeliveryLedger;
  readonly resolver: Pick<SecretResolver, 'readSigningKey'>;
  readonly topic: Pick<EventGridTopicPublisher, 'publish'> | undefined;
  readonly telemetry: Telemetry;
  /** Version adoption, for check `adoption`; none: the check is left out. */
  readonly adoption?: AdoptionSource;
  /**
   * Rotations (when `ROTATION_IDENTITY_CLIENT_ID` is set), built on first use: advanced before the
   * checks, then reported as check `rotation`; none: both are left out.
   */
  readonly rotation?: () => { runner: Pick<RotationSource, 'advanceAll'>; store: Pick<RotationSource, 'listActive'> } | undefined;
  /** Who holds the run lease (instance id). */
  readonly holder: string;
  readonly send?: typeof sendWebhook;
  readonly now?: () => number;
}

/**
 * One scheduled health check: runs unless another run holds the lease (late or overlapping timers
 * are safe), stores the report, sends one availability result per vault and an event per failing
 * check, and notifies `HealthCheckFailed` / `HealthCheckRecovered` subscribers on a change of state
 * only. A notification not yet delivered is retried on the next runs until it is delivered or
 * dead-lettered.
 * @returns the report, or undefined when the run was skipped.
 */
export async function runHealthCheckJob(
  deps: HealthJobDeps,
  log: (line: string) => void,
  timer: { isPastDue: boolean },
): Promise<HealthReport | undefined> {
  if (timer.isPastDue) log('health check: the timer is past due; running now');
  const release = await deps.store.tryAcquireRunLease(deps.holder, HEALTH_RUN_BUDGET_MS + 60_000);
  if (!release) {
    log('health check: another run is in progress; this one is skipped');
    return undefined;
  }
  try {
    await warmSigningKeys(deps);
    const rotations = await advanceRotations(deps, log);
    const report = await runHealthCheck({
      config: deps.config,
      gateways: deps.gateways,
      management: deps.management,
      adoption: deps.adoption,
      rotations,
      ...(deps.now ? { now: deps.now } : {}),
    });
    await deps.store.saveReport(report);
    record(report, deps.telemetry, deps.config.platform);
    log(`health check: ${report.status} in ${report.durationMs} ms (${report.vaults.map((v) => `${v.vault}=${v.status}`).join(', ')})`);
    await notifyChanges(report, deps, log);
    return report;
  } finally {
    await release();
  }
}

/**
 * Advances every active rotation (under the run lease, so one instance at a time), so waiting
 * rotations retire on schedule and failed ones are retried; then lists the active ones for check
 * `rotation`. A failure here never fails the run: the check is then `skipped`.
 */
async function advanceRotations(deps: HealthJobDeps, log: (line: string) => void): Promise<RotationRecord[] | 'unreadable' | undefined> {
  let service: ReturnType<NonNullable<HealthJobDeps['rotation']>>;
  try {
    service = deps.rotation?.();
  } catch (err: unknown) {
    log(`health check: rotations not advanced: ${errorName(err)}`);
    return 'unreadable';
  }
  if (!service) return undefined;
  try {
    await service.runner.advanceAll();
  } catch (err: unknown) {
    log(`health check: rotations not advanced: ${errorName(err)}`);
  }
  try {
    return await service.store.listActive();
  } catch (err: unknown) {
    log(`health check: rotations not read: ${errorName(err)}`);
    return 'unreadable';
  }
}

/** An error's name and code only: a message may quote what a service answered. */
function errorName(err: unknown): string {
  if (!(err instanceof Error)) return 'non-error value thrown';
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? `${err.name} ${code}` : err.name;
}

/**
 * Reads the health subscribers' signing keys while the vault still answers, so that a later
 * failure of that vault (firewall, lost role) can still be reported, signed with the cached key.
 */
async function warmSigningKeys(deps: HealthJobDeps): Promise<void> {
  const names = new Set(
    [...deps.consumers.forHealth('HealthCheckFailed'), ...deps.consumers.forHealth('HealthCheckRecovered')].map((c) => c.signingSecret),
  );
  await Promise.allSettled([...names].map((name) => deps.resolver.readSigningKey(name)));
}

function record(report: HealthReport, telemetry: Telemetry, platform: AppConfig['platform']): void {
  const runLocation = platform.regionName ?? platform.siteName ?? 'local';
  for (const vault of report.vaults) {
    const failing = vault.checks.filter((c) => c.status === 'failed');
    telemetry.trackAvailability({
      name: `Key Vault ${vault.vault}`,
      runLocation,
      success: vault.status !== 'failed',
      durationMs: report.durationMs,
      message:
        failing.length > 0
          ? failing
              .map((c) => `${c.check}${c.target ? ` ${c.target}` : ''}: ${c.cause ?? ''}`)
              .join('; ')
              .slice(0, 1000)
          : vault.status,
      properties: { vault: vault.vault, status: vault.status },
    });
    for (const check of failing) {
      telemetry.trackEvent('HealthCheckFailed', {
        vault: vault.vault,
        check: check.check,
        target: check.target,
        cause: check.cause,
        remedy: check.remedy,
      });
    }
  }
}

async function notifyChanges(report: HealthReport, deps: HealthJobDeps, log: (line: string) => void): Promise<void> {
  const states = await deps.store.loadStates();
  for (const vault of report.vaults) {
    const previous = states.get(vault.vault);
    const failedNow = vault.status === 'failed';
    // A vault seen for the first time counts as healthy before: a first failure is news, a first success is not.
    const failedBefore = previous?.status === 'failed';
    let state: VaultHealthState;
    if (failedNow !== failedBefore) {
      const type = failedNow ? 'HealthCheckFailed' : 'HealthCheckRecovered';
      state = {
        vault: vault.vault,
        status: vault.status,
        since: report.startedAt,
        lastChangeEventId: `health/${vault.vault}/${report.startedAt}`,
        lastChangeType: type,
        lastChangeAt: report.startedAt,
      };
      log(`health check: vault ${vault.vault} ${failedNow ? 'failed' : 'recovered'}`);
    } else {
      state = previous
        ? { ...previous, status: vault.status }
        : {
            vault: vault.vault,
            status: vault.status,
            since: report.startedAt,
            lastChangeEventId: null,
            lastChangeType: null,
            lastChangeAt: null,
          };
    }
    await deps.store.saveState(state);
    // The latest change is (re)sent until every subscriber has it: the ledger skips those served.
    if (state.lastChangeEventId && state.lastChangeType && state.lastChangeAt) {
      await deliver({ eventId: state.lastChangeEventId, type: state.lastChangeType, at: state.lastChangeAt }, vault, deps, log);
    }
  }
}

async function deliver(
  change: { eventId: string; type: 'HealthCheckFailed' | 'HealthCheckRecovered'; at: string },
  vault: VaultHealth,
  deps: HealthJobDeps,
  log: (line: string) => void,
): Promise<void> {
  const failing = vault.checks.filter((c) => c.status === 'failed');
  const pending = pendingNotifications(
    { eventId: change.eventId, eventTime: change.at },
    deps.consumers.forHealth(change.type),
    (consumer) => healthNotification(change, { alias: vault.vault, status: vault.status, checks: failing }, consumer),
    deps,
  );
  if (pending.length === 0) return;
  const outcomes = await deliverNotifications(pending, { ledger: deps.ledger, telemetry: deps.telemetry, log });
  const waiting = outcomes.filter((o) => o.state === 'failed').map((o) => o.consumer);
  if (waiting.length > 0)
    log(`health check: ${change.type} for ${vault.vault} not yet delivered to ${waiting.join(', ')}; retried on the next run`);
}
