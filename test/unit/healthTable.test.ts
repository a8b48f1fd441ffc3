import { formatHealthTable, useColour } from '../../cli/healthTable';
import type { HealthReport } from '../../shared/health/healthReport';

const report: HealthReport = {
  status: 'failed',
  startedAt: '2026-12-01T10:00:00.000Z',
  durationMs: 42,
  vaults: [
    {
      vault: 'default',
      vaultUri: 'https://main.vault.azure.net/',
      status: 'failed',
      checks: [
        { check: 'listSecrets', target: null, status: 'ok', cause: null, remedy: null, durationMs: 3 },
        {
          check: 'getSecret',
          target: 'erp-token',
          status: 'failed',
          cause: 'ForbiddenByFirewall',
          remedy: 'Allow the app in the firewall.',
          durationMs: 4,
        },
        { check: 'expiry', target: 'erp-token', status: 'warning', cause: 'ExpiresSoon', remedy: 'Rotate it.', durationMs: 0 },
        { check: 'softDelete', target: null, status: 'skipped', cause: null, remedy: null, durationMs: 0 },
      ],
    },
  ],
};

describe('formatHealthTable', () => {
  it('prints a summary and one aligned row per check, without colour', () => {
    expect(formatHealthTable(report, { colour: false })).toEqual([
      'Health: failed (default=failed; started 2026-12-01T10:00:00.000Z, 42 ms)',
      '',
      'vault    check        target     status   cause                remedy',
      'default  listSecrets  -          ok       -',
      'default  getSecret    erp-token  failed   ForbiddenByFirewall  Allow the app in the firewall.',
      'default  expiry       erp-token  warning  ExpiresSoon          Rotate it.',
      'default  softDelete   -          skipped  -',
    ]);
  });

  it('paints statuses green, yellow and red without moving the columns', () => {
    const lines = formatHealthTable(report, { colour: true });
    expect(lines[0]).toBe('Health: \u001b[31mfailed\u001b[0m (default=\u001b[31mfailed\u001b[0m; started 2026-12-01T10:00:00.000Z, 42 ms)');
    expect(lines[3]).toBe('default  listSecrets  -          \u001b[32mok     \u001b[0m  -');
    expect(lines[4]).toBe(
      'default  getSecret    erp-token  \u001b[31mfailed \u001b[0m  ForbiddenByFirewall  Allow the app in the firewall.',
    );
    expect(lines[5]).toBe('default  expiry       erp-token  \u001b[33mwarning\u001b[0m  ExpiresSoon          Rotate it.');
    expect(lines[6]).toBe('default  softDelete   -          skipped  -');
    // eslint-disable-next-line no-control-regex -- stripping the colour codes on purpose
    expect(lines.map((l) => l.replace(/\u001b\[\d+m/g, ''))).toEqual(formatHealthTable(report, { colour: false }));
  });
});

describe('useColour', () => {
  it.each([
    [true, {}, true],
    [true, { NO_COLOR: '1' }, false],
    [false, {}, false],
    [undefined, {}, false],
  ])('with isTTY %s and env %j is %s', (isTTY, env, expected) => {
    expect(useColour(isTTY === undefined ? {} : { isTTY }, env)).toBe(expected);
  });
});
