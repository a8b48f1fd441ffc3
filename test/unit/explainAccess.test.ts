import { explainAccess } from '../../shared/callers/explainAccess';
import { loadConfig } from '../../shared/config';

const HASH = 'a'.repeat(64);
const config = loadConfig({
  KEY_VAULT_URI: 'https://main.vault.azure.net/',
  KEY_VAULT_ALIASES: 'partner=https://partner.vault.azure.net/',
  ACCESS_POLICY: JSON.stringify({
    callers: [
      {
        name: 'erp-integration',
        identities: [{ apiKeySha256: HASH }],
        allow: ['erp-*', 'partner/sftp-password', 'whsec-*', 'cache-key'],
        deny: ['erp-admin-*', 'erp-*-old'],
      },
    ],
  }),
  CONSUMERS: JSON.stringify([{ name: 'erp', events: ['SecretExpired'], webhook: 'https://erp.example.com/h', signingSecret: 'whsec-erp' }]),
  CACHE_SHARED: 'table',
  CACHE_SHARED_KEY_SECRET: 'cache-key',
});

describe('explainAccess', () => {
  it.each([
    ['default', 'erp-token', { decision: 'allowed', subject: 'erp-token', reason: 'allow', pattern: 'erp-*' }],
    ['default', 'ERP-Token', { decision: 'allowed', subject: 'ERP-Token', reason: 'allow', pattern: 'erp-*' }],
    [
      'partner',
      'sftp-password',
      { decision: 'allowed', subject: 'partner/sftp-password', reason: 'allow', pattern: 'partner/sftp-password' },
    ],
    ['default', 'erp-admin-x', { decision: 'denied', subject: 'erp-admin-x', reason: 'deny', pattern: 'erp-admin-*' }],
    ['default', 'erp-admin-old', { decision: 'denied', subject: 'erp-admin-old', reason: 'deny', pattern: 'erp-admin-*' }],
    ['default', 'crm-token', { decision: 'denied', subject: 'crm-token', reason: 'noAllowMatch' }],
    ['partner', 'erp-token', { decision: 'denied', subject: 'partner/erp-token', reason: 'noAllowMatch' }],
    ['default', 'WHSEC-ERP', { decision: 'denied', subject: 'WHSEC-ERP', reason: 'signingKey' }],
    ['default', 'cache-key', { decision: 'denied', subject: 'cache-key', reason: 'sharedCacheKey' }],
    ['partner', 'whsec-erp', { decision: 'denied', subject: 'partner/whsec-erp', reason: 'noAllowMatch' }],
  ])('explains %s/%s', (vault, name, expected) => {
    expect(explainAccess(config, 'erp-integration', vault, name)).toEqual(expected);
  });

  it('names the first matching deny pattern, as deny wins over allow', () => {
    expect(explainAccess(config, 'erp-integration', 'default', 'erp-admin-old')).toMatchObject({ pattern: 'erp-admin-*' });
  });

  it('denies a caller the policy does not name', () => {
    expect(explainAccess(config, 'nobody', 'default', 'erp-token')).toEqual({
      decision: 'denied',
      subject: 'erp-token',
      reason: 'unknownCaller',
    });
  });

  it('refuses a signing key even to a caller the policy does not name', () => {
    expect(explainAccess(config, 'nobody', 'default', 'whsec-erp')).toMatchObject({ reason: 'signingKey' });
  });
});
