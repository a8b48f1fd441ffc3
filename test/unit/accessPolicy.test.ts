import { createHash } from 'node:crypto';
import { AccessPolicy, compileGlob } from '../../shared/callers/accessPolicy';

const sha = (key: string): string => createHash('sha256').update(key).digest('hex');
const ERP_APP = '11111111-1111-1111-1111-111111111111';

const policy = new AccessPolicy({
  callers: [
    {
      name: 'erp-integration',
      identities: [{ appId: ERP_APP }, { apiKeySha256: sha('erp-key') }],
      allow: ['erp-*', 'partner/sftp-password'],
      deny: ['erp-admin-*'],
      operator: false,
      roles: ['Secrets.Read'],
      rateLimit: { requestsPerMinute: 120 },
    },
    {
      name: 'ops',
      identities: [{ apiKeySha256: sha('ops-key') }],
      allow: [],
      deny: [],
      operator: true,
      roles: [],
      rateLimit: { requestsPerMinute: 600 },
    },
  ],
});

describe('AccessPolicy', () => {
  it('finds callers by API key and by application id, and nobody else', () => {
    expect(policy.findByApiKey('erp-key')).toEqual({
      name: 'erp-integration',
      operator: false,
      method: 'apiKey',
      keyId: sha('erp-key').slice(0, 12),
      requestsPerMinute: 120,
      missesPerMinute: 100,
    });
    expect(policy.findByApiKey('ops-key')?.operator).toBe(true);
    expect(policy.findByApiKey('erp-key ')).toBeUndefined();
    expect(policy.findByAppId(ERP_APP.toUpperCase(), 'AAAAAAAA-1111-1111-1111-111111111111')).toEqual({
      caller: {
        name: 'erp-integration',
        operator: false,
        method: 'bearer',
        appId: ERP_APP,
        objectId: 'aaaaaaaa-1111-1111-1111-111111111111',
        requestsPerMinute: 120,
        missesPerMinute: 100,
      },
      requiredRoles: ['Secrets.Read'],
    });
    expect(policy.findByAppId('22222222-2222-2222-2222-222222222222')).toBeUndefined();
  });

  const erp = { name: 'erp-integration', operator: false, method: 'apiKey' as const, requestsPerMinute: 120, missesPerMinute: 100 };
  it.each([
    ['default', 'erp-token', true],
    ['default', 'ERP-Token', true],
    ['default', 'erp-admin-password', false],
    ['default', 'ERP-ADMIN-password', false],
    ['default', 'crm-token', false],
    ['partner', 'sftp-password', true],
    ['partner', 'erp-token', false],
    ['other', 'sftp-password', false],
  ])('in vault %s, %s is allowed: %s', (vault, name, allowed) => {
    expect(policy.isAllowed(erp, vault, name)).toBe(allowed);
  });

  it('denies everything to a caller with no allow list, and to an unknown caller', () => {
    expect(
      policy.isAllowed({ name: 'ops', operator: true, method: 'apiKey', requestsPerMinute: 1, missesPerMinute: 1 }, 'default', 'erp-token'),
    ).toBe(false);
    expect(
      policy.isAllowed(
        { name: 'ghost', operator: false, method: 'apiKey', requestsPerMinute: 1, missesPerMinute: 1 },
        'default',
        'erp-token',
      ),
    ).toBe(false);
    expect(new AccessPolicy({ callers: [] }).findByApiKey('anything')).toBeUndefined();
  });

  it('compiles globs whose * stays within one vault and treats other characters literally', () => {
    expect(compileGlob('*').test('a-b')).toBe(true);
    expect(compileGlob('*').test('partner/a')).toBe(false);
    expect(compileGlob('*/*').test('partner/a')).toBe(true);
    expect(compileGlob('a.b').test('aXb')).toBe(false);
  });
});
