/**
 * The pure rules of version adoption: Table keys, the merge with another instance's row, the
 * route's ordering, and the health check's StaleVersionInUse (docs/operations.md); and the
 * `adoption` check itself over a stand-in gateway.
 */
import {
  adoptionAnswer,
  adoptionPartition,
  adoptionRef,
  adoptionRowKey,
  encodeKey,
  mergeAdoption,
  staleReaders,
  staleRemedy,
} from '../../shared/adoption/adoptionRules';
import type { AdoptionRow } from '../../shared/adoption/adoptionTypes';
import type { VaultSettings } from '../../shared/config';
import { VaultAccessDeniedError } from '../../shared/errors';
import { adoptionChecks } from '../../shared/health/adoptionCheck';
import { remedyFor } from '../../shared/health/remedies';
import { RateLimiter } from '../../shared/health/rateLimiter';
import type { VaultGateway, VaultSecret } from '../../shared/secrets/vaultGateway';

const V1 = '1'.repeat(32);
const V2 = '2'.repeat(32);
const V3 = '3'.repeat(32);
const HOUR = 3_600_000;

const row = (caller: string, version: string, since: string, lastRead: string, secret = 'erp-key'): AdoptionRow => ({
  vault: 'default',
  secret,
  caller,
  version,
  since,
  lastRead,
});

describe('Table keys', () => {
  it('encodes what Table storage refuses, and % itself, reversibly', () => {
    expect(encodeKey('a/b\\c#d?e%f\u0001g')).toBe('a%2Fb%5Cc%23d%3Fe%25f%01g');
    expect(decodeURIComponent(encodeKey('p/q#r%s'))).toBe('p/q#r%s');
  });

  it('puts every caller of a secret in one partition, whatever case the name is asked in', () => {
    expect(adoptionPartition('default', 'ERP-Key')).toBe(adoptionPartition('default', 'erp-key'));
    expect(adoptionPartition('default', 'erp-key')).not.toBe(adoptionPartition('partner', 'erp-key'));
    expect(adoptionRowKey('team/erp #1')).toBe('team%2Ferp %231');
  });
});

describe('mergeAdoption', () => {
  const local = row('erp', V2, '2026-12-01T10:00:00.000Z', '2026-12-01T11:00:00.000Z');

  it('writes a row nobody stored', () => {
    expect(mergeAdoption(undefined, local)).toBe(local);
  });

  it('keeps the earliest since and the latest lastRead of one version, and writes nothing when the stored row says it all', () => {
    const stored = row('erp', V2.toUpperCase(), '2026-12-01T09:00:00.000Z', '2026-12-01T10:30:00.000Z');
    expect(mergeAdoption(stored, local)).toEqual({ ...stored, since: '2026-12-01T09:00:00.000Z', lastRead: '2026-12-01T11:00:00.000Z' });
    expect(mergeAdoption({ ...stored, lastRead: '2026-12-01T12:00:00.000Z' }, local)).toBeUndefined();
  });

  it('lets the later read win between two versions', () => {
    const older = row('erp', V1, '2026-11-01T00:00:00.000Z', '2026-12-01T10:59:00.000Z');
    expect(mergeAdoption(older, local)).toBe(local);
    expect(mergeAdoption({ ...older, lastRead: '2026-12-01T11:01:00.000Z' }, local)).toBeUndefined();
  });
});

describe('adoptionAnswer', () => {
  it('groups by version, newest first by the latest since, callers by name', () => {
    const answer = adoptionAnswer('default', 'erp-key', [
      row('partner', V1, '2026-11-01T00:00:00.000Z', '2026-12-01T10:00:00.000Z'),
      row('erp', V2, '2026-12-01T08:00:00.000Z', '2026-12-01T10:00:00.000Z'),
      row('crm', V2, '2026-12-01T09:00:00.000Z', '2026-12-01T09:30:00.000Z'),
      row('old', V3, '2026-10-01T00:00:00.000Z', '2026-10-02T00:00:00.000Z'),
    ]);
    expect(answer).toEqual({
      vault: 'default',
      secret: 'erp-key',
      versions: [
        {
          version: V2,
          callers: [
            { caller: 'crm', since: '2026-12-01T09:00:00.000Z', lastRead: '2026-12-01T09:30:00.000Z' },
            { caller: 'erp', since: '2026-12-01T08:00:00.000Z', lastRead: '2026-12-01T10:00:00.000Z' },
          ],
        },
        { version: V1, callers: [{ caller: 'partner', since: '2026-11-01T00:00:00.000Z', lastRead: '2026-12-01T10:00:00.000Z' }] },
        { version: V3, callers: [{ caller: 'old', since: '2026-10-01T00:00:00.000Z', lastRead: '2026-10-02T00:00:00.000Z' }] },
      ],
    });
    expect(adoptionAnswer('default', 'none', [])).toEqual({ vault: 'default', secret: 'none', versions: [] });
  });
});

describe('adoptionRef', () => {
  const aliases = new Set(['default', 'partner']);
  it('checks the name and the vault as the resolve routes do', () => {
    expect(adoptionRef('erp-key', null, aliases)).toEqual({ vault: 'default', secret: 'erp-key' });
    expect(adoptionRef('erp-key', 'partner', aliases)).toEqual({ vault: 'partner', secret: 'erp-key' });
    expect(() => adoptionRef('erp_key', null, aliases)).toThrow(expect.objectContaining({ status: 400, code: 'InvalidSecretName' }));
    expect(() => adoptionRef('erp-key', 'crm', aliases)).toThrow(expect.objectContaining({ status: 400, code: 'InvalidRequest' }));
  });
});

describe('staleReaders (StaleVersionInUse)', () => {
  const created = '2026-12-01T00:00:00.000Z';
  const latest = { version: V2, createdAt: created };
  const at = (hours: number) => Date.parse(created) + hours * HOUR;
  const rows = [
    row('moved', V2, '2026-12-01T01:00:00.000Z', '2026-12-02T01:00:00.000Z'),
    row('stuck', V1, '2026-11-01T00:00:00.000Z', '2026-12-01T20:00:00.000Z'),
    row('gone', V1, '2026-11-01T00:00:00.000Z', '2026-11-30T23:00:00.000Z'),
  ];

  it('names the callers that read an older version after the newest appeared, once the warning hours have passed', () => {
    expect(staleReaders(rows, latest, 24, at(25))).toEqual([{ caller: 'stuck', version: V1, lastRead: '2026-12-01T20:00:00.000Z' }]);
  });

  it('says nothing before the warning hours have passed', () => {
    expect(staleReaders(rows, latest, 24, at(23.9))).toEqual([]);
    expect(staleReaders(rows, latest, 0.5, at(0.6))).toHaveLength(1);
  });

  it('has a remedy naming the callers and their version', () => {
    const stale = staleReaders(rows, latest, 24, at(25));
    expect(staleRemedy('erp-key', 'default', V2, stale)).toBe(
      `Callers stuck (version ${V1}) still read an older version of secret erp-key in vault default than the newest, ${V2}: ` +
        'have them stop pinning the old version (or restart them so they drop a value they keep) and resolve the latest before the old one is retired.',
    );
    expect(remedyFor('StaleVersionInUse', 'default', 'erp-key')).toContain('secret erp-key in vault default');
  });
});

describe('adoptionChecks', () => {
  const vault: VaultSettings = {
    alias: 'default',
    uri: 'https://contoso.vault.azure.net/',
    resourceId: undefined,
    expectations: { firewall: 'any', readers: [] },
  };
  const latest = (name: string, version: string, updatedOn: string): VaultSecret => ({
    name,
    vault: 'default',
    version,
    value: 'never-logged',
    contentType: null,
    enabled: true,
    notBefore: null,
    expiresOn: null,
    updatedOn,
  });
  const gatewayOf = (answers: Record<string, VaultSecret | Error>): VaultGateway =>
    ({
      alias: 'default',
      getSecret: (name: string) => {
        const answer = answers[name];
        return answer instanceof Error || !answer ? Promise.reject(answer ?? new Error('missing')) : Promise.resolve(answer);
      },
    }) as unknown as VaultGateway;

  it('warns StaleVersionInUse for a secret with a caller on the old version, ok for one whose callers moved, skipped when unreadable', async () => {
    const now = Date.parse('2026-12-03T00:00:00.000Z');
    const gateway = gatewayOf({
      'erp-key': latest('erp-key', V2, '2026-12-01T00:00:00.000Z'),
      'crm-key': latest('crm-key', V2, '2026-12-01T00:00:00.000Z'),
      'locked-key': new VaultAccessDeniedError('denied', 'ForbiddenByRbac'),
    });
    const rows = [
      row('erp', V1, '2026-11-01T00:00:00.000Z', '2026-12-02T00:00:00.000Z', 'erp-key'),
      row('crm', V2, '2026-12-01T00:10:00.000Z', '2026-12-02T00:00:00.000Z', 'crm-key'),
      row('x', V1, '2026-11-01T00:00:00.000Z', '2026-12-02T00:00:00.000Z', 'locked-key'),
      { ...row('y', V1, '2026-11-01T00:00:00.000Z', '2026-12-02T00:00:00.000Z', 'erp-key'), vault: 'partner' },
    ];
    const results = await adoptionChecks(vault, gateway, rows, {
      rate: new RateLimiter(1000),
      deadline: performance.now() + 10_000,
      warningHours: 24,
      now: () => now,
    });
    expect(results.map((r) => [r.check, r.target, r.status, r.cause])).toEqual([
      ['adoption', 'crm-key', 'ok', null],
      ['adoption', 'erp-key', 'warning', 'StaleVersionInUse'],
      ['adoption', 'locked-key', 'skipped', null],
    ]);
    expect(results[1]?.remedy).toContain(`Callers erp (version ${V1})`);
    expect(JSON.stringify(results)).not.toContain('never-logged');
  });
});
