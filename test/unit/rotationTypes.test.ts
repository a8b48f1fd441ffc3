import { passwordDisplayName, ROTATION_STATES } from '../../shared/rotation/rotationTypes';
import { stepOf } from '../../shared/rotation/rotationSteps';

describe('rotation types', () => {
  it('names a rotation’s password after the rotation', () => {
    expect(passwordDisplayName('rot-20260301T100000Z-3f9a1c')).toBe('secret-broker rot-20260301T100000Z-3f9a1c');
  });

  it('lists the states in the order a rotation passes them, ending in retired or failed', () => {
    expect(ROTATION_STATES).toEqual([
      'started',
      'passwordAdded',
      'stored',
      'awaitingAdoption',
      'retiring',
      'passwordRemoved',
      'oldVersionDisabled',
      'retired',
      'failed',
    ]);
    expect(ROTATION_STATES.filter((s) => stepOf(s) === undefined)).toEqual(['retired', 'failed']);
  });
});
