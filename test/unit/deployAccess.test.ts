import { roleAssignmentName, ROLES } from '../../cli/deploy/access';

describe('roleAssignmentName', () => {
  const scope = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct';
  const principal = '6f1d2c3b-0000-4000-8000-00000000abcd';

  it('is a UUID derived from scope, role and principal, the same on every run', () => {
    const name = roleAssignmentName(scope, ROLES['Storage Blob Data Owner'], principal);
    expect(name).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(roleAssignmentName(scope.toUpperCase(), ROLES['Storage Blob Data Owner'], principal.toUpperCase())).toBe(name);
  });

  it('differs when any of the three differs', () => {
    const name = roleAssignmentName(scope, ROLES.Reader, principal);
    expect(roleAssignmentName(`${scope}2`, ROLES.Reader, principal)).not.toBe(name);
    expect(roleAssignmentName(scope, ROLES['Key Vault Secrets User'], principal)).not.toBe(name);
    expect(roleAssignmentName(scope, ROLES.Reader, '6f1d2c3b-0000-4000-8000-00000000abce')).not.toBe(name);
  });
});
