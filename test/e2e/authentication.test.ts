/**
 * End to end: bearer tokens over HTTP against the local host process. Only app-only RS256 tokens
 * of the issuer's tenant that carry a required app role resolve a secret; every other token gets a
 * 401 whose body and `WWW-Authenticate` name the rule it broke.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { startOidcIssuer } from '../../local/emulators/oidcIssuer';
import type { OidcIssuer, TokenClaims } from '../../local/emulators/oidcIssuer';
import { startBrokerHost } from '../support/brokerHost';
import type { BrokerHost } from '../support/brokerHost';
import { hs256Token, unsignedToken } from '../support/craftedTokens';

const ERP_APP = '11111111-1111-1111-1111-111111111111';
const AUDIENCE = 'api://secret-broker';
const OTHER_TENANT = '0d6f2a8e-1b3c-4d5e-8f70-9a1b2c3d4e5f';

const policy = {
  callers: [{ name: 'erp-integration', identities: [{ appId: ERP_APP }], allow: ['erp-*'], roles: ['Secrets.Read'] }],
};

let azure: LocalAzure;
let issuer: OidcIssuer;
let host: BrokerHost;

const tokenFor = (extra: Record<string, unknown> = {}, claims: Partial<TokenClaims> = {}) =>
  issuer.issueToken({ appId: ERP_APP, audience: AUDIENCE, ...claims, extra: { roles: ['Secrets.Read'], ...extra } });

async function resolveWith(token: string) {
  const response = await fetch(`${host.url}/api/secrets/erp-token`, { headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

beforeAll(async () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-auth-'));
  [azure, issuer] = await Promise.all([startLocalAzure({ stateDir, vaults: ['contoso-vault2'] }), startOidcIssuer()]);
  azure.keyVault.setSecret('contoso-vault2', 'erp-token', 'erp-value');
  host = await startBrokerHost({
    ...azure.env,
    KEY_VAULT_URI: azure.keyVault.vaultUri('contoso-vault2'),
    ACCESS_POLICY: JSON.stringify(policy),
    AUTH_ISSUER: issuer.issuer,
    AUTH_AUDIENCE: AUDIENCE,
  });
});

afterAll(async () => {
  await host?.stop();
  await Promise.all([azure?.stop(), issuer?.stop()]);
});

describe('bearer authentication over HTTP', () => {
  it('resolves a secret for an app-only token that holds the required role', async () => {
    const res = await resolveWith(await tokenFor());
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ name: 'erp-token', value: 'erp-value' });
  });

  it.each<[string, () => Promise<string>, string]>([
    [
      'a delegated token',
      () => tokenFor({ scp: 'user_impersonation', idtyp: 'user' }),
      'delegated (user) tokens are not accepted (scp present)',
    ],
    ['a token of another tenant', () => tokenFor({ tid: OTHER_TENANT }), 'tenant (tid) does not match AUTH_ISSUER'],
    ['a token without the role', () => tokenFor({ roles: undefined }), 'it lacks a required app role (one of: Secrets.Read)'],
    ['an HS256 token', async () => hs256Token(await tokenFor()), 'algorithm HS256 is not accepted (RS256 only)'],
    ['an unsigned token (alg none)', async () => unsignedToken(await tokenFor()), 'algorithm none is not accepted (RS256 only)'],
  ])('refuses %s with 401, the rule in the body and in WWW-Authenticate', async (_label, mint, rule) => {
    const token = await mint();
    const res = await resolveWith(token);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.json).toMatchObject({
      status: 401,
      code: 'Unauthenticated',
      detail: expect.stringContaining(`The bearer token is not valid: ${rule}`),
    });
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer realm="secret-broker", error="invalid_token", error_description="${rule}", ApiKey header="x-api-key"`,
    );
    expect(JSON.stringify(res.json)).not.toContain(token);
  });
});
