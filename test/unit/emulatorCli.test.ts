import { parseArgs, passwordTable } from '../../local/emulatorCli';

describe('npm run emulator: arguments', () => {
  it('takes near-expiry and passwords with one secret name each', () => {
    expect(parseArgs(['near-expiry', 'demo-app-secret'])).toEqual({ kind: 'near-expiry', secret: 'demo-app-secret' });
    expect(parseArgs(['passwords', 'demo-app-secret'])).toEqual({ kind: 'passwords', secret: 'demo-app-secret' });
    expect(parseArgs(['near-expiry'])).toEqual({
      kind: 'error',
      message: 'near-expiry needs a secret name, e.g. near-expiry demo-app-secret',
    });
    expect(parseArgs(['passwords', 'a', 'b'])).toEqual({ kind: 'error', message: 'passwords takes one secret name, not 2: a b' });
  });
});

describe('npm run emulator -- passwords: the table', () => {
  const application = { displayName: 'Demo ERP integration', objectId: '5e1d2c3b-4a59-4687-9a1b-2c3d4e5f6a7b' };

  it('lists keyId, display name and end date, and counts the passwords', () => {
    const table = passwordTable({
      secret: 'demo-app-secret',
      application,
      passwords: [
        {
          keyId: '396e8fb4-d374-4ead-aae8-963dd14462d3',
          displayName: 'demo seed',
          hint: 'nDy',
          endDateTime: '2027-12-06T21:31:50.0000000Z',
        },
        {
          keyId: '20fb7dab-102e-4d49-a7b0-93e3638d0021',
          displayName: 'secret-broker rot-20261206T213218Z-996f02',
          hint: 'Z6D',
          endDateTime: '2027-06-04T21:32:18.0000000Z',
        },
      ],
    });
    expect(table.split('\n')).toEqual([
      'Demo ERP integration (application 5e1d2c3b-4a59-4687-9a1b-2c3d4e5f6a7b), whose client secret demo-app-secret holds: 2 passwords',
      '  keyId                                 displayName                                endDateTime',
      '  396e8fb4-d374-4ead-aae8-963dd14462d3  demo seed                                  2027-12-06T21:31:50.0000000Z',
      '  20fb7dab-102e-4d49-a7b0-93e3638d0021  secret-broker rot-20261206T213218Z-996f02  2027-06-04T21:32:18.0000000Z',
      '',
    ]);
  });

  it('prints no field but those three, whatever the answer carries: no secret text, no hint', () => {
    const table = passwordTable({
      secret: 'demo-app-secret',
      application,
      passwords: [{ keyId: 'k', displayName: null, hint: 'abc', endDateTime: 'e', secretText: 'abcSECRET-TEXT' }],
    });
    expect(table).toContain('holds: 1 password\n');
    expect(table).not.toContain('SECRET-TEXT');
    expect(table).not.toContain('abc');
  });
});
