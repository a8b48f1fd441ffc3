/**
 * CallerAuthenticator against the local OIDC issuer over real HTTP: which bearer tokens prove an
 * application, and which rule each refused one broke (problem detail and Bearer challenge).
 */
import { AccessPolicy } from '../../shared/callers/accessPolicy';
import { CallerAuthenticator, issuerTenant } from '../../shared/callers/authenticateCaller';
import { ForbiddenError, UnauthenticatedError } from '../../shared/errors';
import { startOidcIssuer } from '../../local/emulators/oidcIssuer';
import type { OidcIssuer, TokenClaims } from '../../local/emulators/oidcIssuer';
import { hs256Token, unsignedToken } from '../support/craftedTokens';

const ERP_APP = '11111111-1111-1111-1111-111111111111';
const REPORTS_APP = '22222222-2222-2222-2222-222222222222';
const STRANGER_APP = '99999999-9999-9999-9999-999999999999';
const AUDIENCE = 'api://secret-broker';
const OTHER_TENANT = '0d6f2a8e-1b3c-4d5e-8f70-9a1b2c3d4e5f';

const policy = new AccessPolicy({
  callers: [
    {
      name: 'erp-integration',
      identities: [{ appId: ERP_APP }],
      allow: ['erp-*'],
      deny: [],
      operator: false,
      roles: ['Secrets.Read', 'Secrets.ReadAll'],
      rateLimit: { requestsPerMinute: 120 },
    },
    {
      name: 'reports',
      identities: [{ appId: REPORTS_APP }],
      allow: ['reports-*'],
      deny: [],
      operator: false,
      roles: [],
      rateLimit: { requestsPerMinute: 120 },
    },
  ],
});

let issuer: OidcIssuer;
let authenticator: CallerAuthenticator;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  authenticator = new CallerAuthenticator(policy, { issuer: issuer.issuer, audience: AUDIENCE });
});

afterAll(async () => {
  await issuer?.stop();
});

const withBearer = (token: string) => new Headers({ authorization: `Bearer ${token}` });
const tokenFor = (claims: Partial<TokenClaims> = {}) => issuer.issueToken({ appId: ERP_APP, audience: AUDIENCE, ...claims });
const withRole = (extra: Record<string, unknown> = {}) => tokenFor({ extra: { roles: ['Secrets.Read'], ...extra } });

/** The error `authenticate` threw, with the challenge the HTTP pipeline would send for it. */
async function refusal(token: string): Promise<{ error: UnauthenticatedError; challenge: string }> {
  const error = await authenticator.authenticate(withBearer(token)).then(
    () => {
      throw new Error('expected a refusal');
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(UnauthenticatedError);
  const unauthenticated = error as UnauthenticatedError;
  expect(unauthenticated).toMatchObject({ status: 401, code: 'Unauthenticated' });
  return { error: unauthenticated, challenge: authenticator.challengeFor(error) };
}

describe('CallerAuthenticator', () => {
  it('accepts an app-only token of a known application that holds a required role', async () => {
    const caller = await authenticator.authenticate(withBearer(await withRole()));
    expect(caller).toMatchObject({ name: 'erp-integration', method: 'bearer', appId: ERP_APP });
    expect(caller.objectId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('accepts a v1 app-only token (appid) and a token without idtyp (optional claim not configured)', async () => {
    const v1 = await tokenFor({ claimName: 'appid', extra: { roles: ['Secrets.ReadAll'] } });
    const noIdtyp = await withRole({ idtyp: undefined });
    // Without idtyp, no scp and oid = sub (the emulator's app tokens carry the same GUID in both).
    const v1NoIdtyp = await tokenFor({ claimName: 'appid', extra: { roles: ['Secrets.ReadAll'], idtyp: undefined } });
    // idtyp = app says app-only by itself.
    const idtypApp = await withRole({ sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ' });
    for (const token of [v1, noIdtyp, v1NoIdtyp, idtypApp]) {
      await expect(authenticator.authenticate(withBearer(token))).resolves.toMatchObject({ name: 'erp-integration' });
    }
  });

  it('needs no role when the caller entry lists none', async () => {
    const token = await issuer.issueToken({ appId: REPORTS_APP, audience: AUDIENCE });
    await expect(authenticator.authenticate(withBearer(token))).resolves.toMatchObject({ name: 'reports' });
  });

  it.each<[string, () => Promise<string>, string, string]>([
    [
      'a delegated token (scp and idtyp user)',
      () => withRole({ scp: 'Secrets.Read', idtyp: 'user' }),
      'The bearer token is not valid: delegated (user) tokens are not accepted (scp present); use an app-only token (client credentials)',
      'delegated (user) tokens are not accepted (scp present)',
    ],
    [
      'a token with scp alone',
      () => withRole({ scp: 'user_impersonation' }),
      'The bearer token is not valid: delegated (user) tokens are not accepted (scp present); use an app-only token (client credentials)',
      'delegated (user) tokens are not accepted (scp present)',
    ],
    [
      'a v2 token without idtyp whose oid is not sub (a user, optional claim not configured)',
      () => withRole({ idtyp: undefined, sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ' }),
      'The bearer token is not valid: delegated (user) tokens are not accepted (no idtyp, and oid is not sub); use an app-only token (client credentials)',
      'delegated (user) tokens are not accepted (no idtyp, and oid is not sub)',
    ],
    [
      'a v1 token without idtyp and without oid',
      () => tokenFor({ claimName: 'appid', extra: { roles: ['Secrets.ReadAll'], idtyp: undefined, oid: undefined } }),
      'The bearer token is not valid: delegated (user) tokens are not accepted (no idtyp, and oid is not sub); use an app-only token (client credentials)',
      'delegated (user) tokens are not accepted (no idtyp, and oid is not sub)',
    ],
    [
      'a token with idtyp user alone',
      () => withRole({ idtyp: 'user' }),
      'The bearer token is not valid: delegated (user) tokens are not accepted (idtyp is not app); use an app-only token (client credentials)',
      'delegated (user) tokens are not accepted (idtyp is not app)',
    ],
    [
      'a token of another tenant',
      () => withRole({ tid: OTHER_TENANT }),
      'The bearer token is not valid: tenant (tid) does not match AUTH_ISSUER',
      'tenant (tid) does not match AUTH_ISSUER',
    ],
    [
      'a token without tid',
      () => withRole({ tid: undefined }),
      'The bearer token is not valid: tenant (tid) is missing; it must be the tenant in AUTH_ISSUER',
      'tenant (tid) is missing',
    ],
    [
      'a token without a required role',
      () => tokenFor(),
      'The bearer token is not valid: it lacks a required app role (one of: Secrets.Read, Secrets.ReadAll)',
      'it lacks a required app role (one of: Secrets.Read, Secrets.ReadAll)',
    ],
    [
      'a token whose roles are other roles',
      () => tokenFor({ extra: { roles: ['Secrets.Write', 'secrets.read'] } }),
      'The bearer token is not valid: it lacks a required app role (one of: Secrets.Read, Secrets.ReadAll)',
      'it lacks a required app role (one of: Secrets.Read, Secrets.ReadAll)',
    ],
    [
      'an HS256 token signed with a symmetric key under the same kid',
      async () => hs256Token(await withRole()),
      'The bearer token is not valid: algorithm HS256 is not accepted (RS256 only)',
      'algorithm HS256 is not accepted (RS256 only)',
    ],
    [
      'an unsigned token (alg none)',
      async () => unsignedToken(await withRole()),
      'The bearer token is not valid: algorithm none is not accepted (RS256 only)',
      'algorithm none is not accepted (RS256 only)',
    ],
    [
      'an expired token',
      () => tokenFor({ expiresInSeconds: -600, extra: { roles: ['Secrets.Read'] } }),
      'The bearer token is not valid: expired',
      'expired',
    ],
    [
      'a token for another audience',
      () => tokenFor({ audience: 'api://someone-else', extra: { roles: ['Secrets.Read'] } }),
      'The bearer token is not valid: audience (aud) does not match AUTH_AUDIENCE',
      'audience (aud) does not match AUTH_AUDIENCE',
    ],
    [
      'a token signed by an unpublished key',
      () => issuer.forgeToken({ appId: ERP_APP, audience: AUDIENCE, extra: { roles: ['Secrets.Read'] } }),
      'The bearer token is not valid: signature does not verify',
      'signature does not verify',
    ],
  ])('refuses %s with 401 naming the rule in the detail and the challenge', async (_label, mint, detail, description) => {
    const { error, challenge } = await refusal(await mint());
    expect(error.message).toBe(detail);
    expect(challenge).toBe(
      `Bearer realm="secret-broker", error="invalid_token", error_description="${description}", ApiKey header="x-api-key"`,
    );
  });

  it('never echoes an unknown alg from the token header', async () => {
    const genuine = await withRole();
    const header = Buffer.from(JSON.stringify({ alg: 'X"\\<script>', typ: 'JWT' })).toString('base64url');
    const { error, challenge } = await refusal(`${header}.${genuine.split('.')[1]}.c2ln`);
    expect(error.message).toBe('The bearer token is not valid: algorithm is not accepted (RS256 only)');
    expect(challenge).toContain('error_description="algorithm is not accepted (RS256 only)"');
  });

  it('refuses a valid app-only token of an application not in the policy with 403', async () => {
    const token = await issuer.issueToken({ appId: STRANGER_APP, audience: AUDIENCE, extra: { roles: ['Secrets.Read'] } });
    await expect(authenticator.authenticate(withBearer(token))).rejects.toEqual(
      new ForbiddenError(`Application ${STRANGER_APP} is not a caller in the access policy`),
    );
  });

  it('names invalid_request for a malformed Authorization header, and no error when no credential was sent', async () => {
    const malformed = await authenticator.authenticate(new Headers({ authorization: 'Basic abc' })).catch((err: unknown) => err);
    expect(authenticator.challengeFor(malformed)).toBe(
      'Bearer realm="secret-broker", error="invalid_request", error_description="the Authorization header must be Bearer and a token", ApiKey header="x-api-key"',
    );
    const none = await authenticator.authenticate(new Headers()).catch((err: unknown) => err);
    expect(authenticator.challengeFor(none)).toBe('Bearer realm="secret-broker", ApiKey header="x-api-key"');
  });

  it('offers only the API key challenge when bearer tokens are not configured', async () => {
    const keysOnly = new CallerAuthenticator(policy, undefined);
    const err = await keysOnly.authenticate(withBearer(await withRole())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(keysOnly.challengeFor(err)).toBe('ApiKey header="x-api-key"');
  });
});

describe('issuerTenant', () => {
  it.each([
    ['https://login.microsoftonline.com/7C1F4E2A-93D5-4B86-A0E4-5D2C8B9F1A36/v2.0', '7c1f4e2a-93d5-4b86-a0e4-5d2c8b9f1a36'],
    ['https://sts.windows.net/7c1f4e2a-93d5-4b86-a0e4-5d2c8b9f1a36/', '7c1f4e2a-93d5-4b86-a0e4-5d2c8b9f1a36'],
    ['https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0', 'contoso.onmicrosoft.com'],
    ['https://issuer.example.com', undefined],
    ['not a url', undefined],
  ])('reads the tenant of %s as %s', (issuerUrl, tenant) => {
    expect(issuerTenant(issuerUrl)).toBe(tenant);
  });
});
