import { loadConfig } from '../../shared/config';
import { runHealthCheckJob } from '../../shared/health/healthCheckJob';
import type { HealthJobDeps } from '../../shared/health/healthCheckJob';
import { createMemoryHealthReportStore } from '../../shared/health/healthReportStore';
import { ConsumerDirectory } from '../../shared/notify/consumerDirectory';
import { createMemoryDeliveryLedger } from '../../shared/notify/deliveryLedger';
import { newRotationRecord } from '../../shared/rotation/rotationSteps';
import { createTelemetry } from '../../shared/telemetry';

function deps(): HealthJobDeps {
  const config = loadConfig({ KEY_VAULT_URI: 'https://contoso.vault.azure.net/' });
  return {
    config,
    // No gateway for the vault: the data-plane checks are left out, the management ones skipped.
    gateways: new Map(),
    management: undefined,
    store: createMemoryHealthReportStore(),
    consumers: new ConsumerDirectory([]),
    ledger: createMemoryDeliveryLedger(),
    resolver: { readSigningKey: () => Promise.reject(new Error('unused')) },
    topic: undefined,
    telemetry: createTelemetry(undefined),
    holder: 'test',
  };
}

describe('runHealthCheckJob', () => {
  it('skips a run while another one holds the lease, and runs once it is released', async () => {
    const d = deps();
    const release = await d.store.tryAcquireRunLease('other-instance', 60_000);
    const log: string[] = [];
    expect(await runHealthCheckJob(d, (l) => log.push(l), { isPastDue: false })).toBeUndefined();
    expect(log).toContain('health check: another run is in progress; this one is skipped');
    await release!();
    const report = await runHealthCheckJob(d, (l) => log.push(l), { isPastDue: true });
    expect(report?.vaults.map((v) => v.vault)).toEqual(['default']);
    expect(log).toContain('health check: the timer is past due; running now');
    expect(await d.store.latestReport()).toEqual(report);
  });

  it('releases the lease after a run so the next one is not skipped', async () => {
    const d = deps();
    await runHealthCheckJob(d, () => undefined, { isPastDue: false });
    expect(await runHealthCheckJob(d, () => undefined, { isPastDue: false })).toBeDefined();
  });

  it('advances rotations before its checks and reports each active one as check rotation', async () => {
    const order: string[] = [];
    const d: HealthJobDeps = {
      ...deps(),
      rotation: () => ({
        runner: { advanceAll: () => (order.push('advance'), Promise.resolve([])) },
        store: {
          listActive: () => {
            order.push('list');
            return Promise.resolve([{ ...rotationRecord('erp-token'), state: 'awaitingAdoption' as const }]);
          },
        },
      }),
    };
    const report = await runHealthCheckJob(d, () => undefined, { isPastDue: false });
    expect(order).toEqual(['advance', 'list']);
    expect(report?.vaults[0]?.checks.filter((c) => c.check === 'rotation')).toEqual([
      { check: 'rotation', target: 'erp-token', status: 'ok', cause: null, remedy: null, durationMs: 0 },
    ]);
  });

  it('runs, and stores its report, when advancing rotations or reading them fails', async () => {
    const log: string[] = [];
    const failing = Object.assign(new Error('storage down'), { code: 'ECONNREFUSED' });
    const d: HealthJobDeps = {
      ...deps(),
      rotation: () => ({ runner: { advanceAll: () => Promise.reject(failing) }, store: { listActive: () => Promise.reject(failing) } }),
    };
    const report = await runHealthCheckJob(d, (l) => log.push(l), { isPastDue: false });
    expect(report?.vaults[0]?.checks.filter((c) => c.check === 'rotation')).toEqual([
      { check: 'rotation', target: null, status: 'skipped', cause: null, remedy: null, durationMs: 0 },
    ]);
    expect(log).toContain('health check: rotations not advanced: Error ECONNREFUSED');
    expect(await d.store.latestReport()).toEqual(report);
  });
});

function rotationRecord(secret: string) {
  return newRotationRecord({
    id: 'rot-20261123T100000Z-3f9a1c',
    vault: 'default',
    secret,
    applicationObjectId: '0b5b7bd2-0000-4000-8000-000000000001',
    validityDays: 90,
    reason: 'manual',
    oldVersion: 'a'.repeat(32),
    oldExpiresOn: null,
    carriedTags: {},
    now: new Date('2026-11-23T10:00:00Z'),
  });
}
