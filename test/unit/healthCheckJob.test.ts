import { loadConfig } from '../../shared/config';
import { runHealthCheckJob } from '../../shared/health/healthCheckJob';
import type { HealthJobDeps } from '../../shared/health/healthCheckJob';
import { createMemoryHealthReportStore } from '../../shared/health/healthReportStore';
import { ConsumerDirectory } from '../../shared/notify/consumerDirectory';
import { createMemoryDeliveryLedger } from '../../shared/notify/deliveryLedger';
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
});
