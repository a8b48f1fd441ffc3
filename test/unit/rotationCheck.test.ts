import { rotationChecks } from '../../shared/health/rotationCheck';
import { newRotationRecord } from '../../shared/rotation/rotationSteps';
import type { RotationRecord } from '../../shared/rotation/rotationTypes';

function record(secret: string, patch: Partial<RotationRecord> = {}, vault = 'default'): RotationRecord {
  const base = newRotationRecord({
    id: `rot-20261123T100000Z-${secret.length.toString(16).padStart(6, '0')}`,
    vault,
    secret,
    applicationObjectId: '0b5b7bd2-0000-4000-8000-000000000001',
    validityDays: 90,
    reason: 'SecretNearExpiry',
    oldVersion: 'a'.repeat(32),
    oldExpiresOn: null,
    carriedTags: {},
    now: new Date('2026-11-23T10:00:00Z'),
  });
  return { ...base, ...patch };
}

describe('rotationChecks', () => {
  it('is ok per progressing rotation of the vault, targeting its secret, sorted by secret', () => {
    const checks = rotationChecks('default', [
      record('erp-b', { state: 'awaitingAdoption', holders: ['crm'] }),
      record('erp-a', { state: 'stored' }),
      record('other-vault', { state: 'stored' }, 'partner'),
      record('done', { state: 'retired' }),
    ]);
    expect(checks).toEqual([
      { check: 'rotation', target: 'erp-a', status: 'ok', cause: null, remedy: null, durationMs: 0 },
      { check: 'rotation', target: 'erp-b', status: 'ok', cause: null, remedy: null, durationMs: 0 },
    ]);
  });

  it("fails RotationFailed for a failed rotation, the remedy naming the step, the service's code and what to do", () => {
    const failed = record('erp-token', {
      state: 'failed',
      failure: {
        step: 'newPassword',
        resumeState: 'started',
        service: 'graph',
        code: 'Authorization_RequestDenied',
        status: 403,
        message: 'Insufficient privileges to complete the operation.',
        remedy: "Grant the rotation identity Graph's Application.ReadWrite.OwnedBy app role (Graph: Authorization_RequestDenied).",
        at: '2026-11-23T10:00:01.000Z',
      },
    });
    const [check] = rotationChecks('default', [failed]);
    expect(check).toMatchObject({ check: 'rotation', target: 'erp-token', status: 'failed', cause: 'RotationFailed' });
    expect(check?.remedy).toContain('step newPassword');
    expect(check?.remedy).toContain('Microsoft Graph answered Authorization_RequestDenied (HTTP 403)');
    expect(check?.remedy).toContain('Application.ReadWrite.OwnedBy');
  });

  it('is one skipped check when the rotation store could not be read', () => {
    expect(rotationChecks('default', 'unreadable')).toEqual([
      { check: 'rotation', target: null, status: 'skipped', cause: null, remedy: null, durationMs: 0 },
    ]);
  });
});
