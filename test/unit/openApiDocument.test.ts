import type { FunctionDefinition } from '../../functions/index';
import type { ErrorCode } from '../../shared/errors';
import { HEALTH_CHECKS } from '../../shared/health/healthReport';
import type { HealthCause } from '../../shared/health/healthReport';
import { openApiDocument } from '../../shared/http/openApiDocument';
import { documentAjv, resolvePointer } from '../support/openApiConformance';

/**
 * Every code a problem may carry: the ErrorCode union (the Record type fails to compile when the
 * union gains a code this list lacks) plus the contract's codes raised outside it.
 */
const PROBLEM_CODES: Record<ErrorCode | 'TooManyRequests' | 'InternalError', true> = {
  InvalidSecretName: true,
  InvalidVersion: true,
  InvalidRequest: true,
  Unauthenticated: true,
  Forbidden: true,
  SecretNotFound: true,
  SecretDisabled: true,
  TooManySecrets: true,
  TooManyRequests: true,
  VaultThrottled: true,
  VaultUnavailable: true,
  VaultForbiddenByFirewall: true,
  VaultAccessDenied: true,
  RotationNotEnabled: true,
  SecretNotRotatable: true,
  InternalError: true,
};

/** Every health cause of the contract, written out so a cause added to the code but not to the contract shows. */
const HEALTH_CAUSES: Record<HealthCause, true> = {
  ForbiddenByFirewall: true,
  ForbiddenByRbac: true,
  ForbiddenByPolicy: true,
  SecretNotFound: true,
  SecretDisabled: true,
  SecretSoftDeleted: true,
  VaultUnreachable: true,
  TokenUnavailable: true,
  Timeout: true,
  ExpiresSoon: true,
  Expired: true,
  NoExpiry: true,
  FirewallNotAsExpected: true,
  PublicAccessNotAsExpected: true,
  SoftDeleteOff: true,
  PurgeProtectionOff: true,
  ReaderPermissionMissing: true,
  LocationNotAsExpected: true,
  ManagementUnavailable: true,
  StaleVersionInUse: true,
  RotationFailed: true,
};

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
const paths = openApiDocument.paths as unknown as Record<string, Record<string, { operationId?: string; responses?: object }>>;
const operations = Object.entries(paths).flatMap(([path, item]) =>
  Object.entries(item)
    .filter(([method]) => METHODS.includes(method))
    .map(([method, operation]) => ({ path, method, operation })),
);

function refsIn(node: unknown, at = '#'): { at: string; ref: string }[] {
  if (typeof node !== 'object' || node === null) return [];
  return Object.entries(node).flatMap(([key, value]) =>
    key === '$ref' && typeof value === 'string' ? [{ at, ref: value }] : refsIn(value, `${at}/${key}`),
  );
}

let functionDefinitions: readonly FunctionDefinition[];

beforeAll(() => {
  // The entry point validates the settings as it loads; a vault URI is all it needs. It also
  // warns once per function that @azure/functions is in test mode.
  process.env.KEY_VAULT_URI = 'https://unit-test.vault.azure.net/';
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after the setting above, not hoisted like an import
    ({ functionDefinitions } = require('../../functions/index') as typeof import('../../functions/index'));
  } finally {
    warn.mockRestore();
    delete process.env.KEY_VAULT_URI;
  }
});

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1 and survives a JSON round trip unchanged', () => {
    expect(openApiDocument.openapi).toBe('3.1.0');
    expect(JSON.parse(JSON.stringify(openApiDocument))).toEqual(openApiDocument);
  });

  it('has every $ref resolve to a component', () => {
    const refs = refsIn(openApiDocument);
    expect(refs.length).toBeGreaterThan(20);
    const unresolved = refs.filter(({ ref }) => !ref.startsWith('#/components/') || resolvePointer(ref) === undefined);
    expect(unresolved).toEqual([]);
  });

  it('compiles every schema of the document with Ajv (JSON Schema 2020-12)', () => {
    const ajv = documentAjv();
    const pointers = [
      ...Object.keys(openApiDocument.components.schemas).map((name) => `#/components/schemas/${name}`),
      ...Object.keys(openApiDocument.components.headers).map((name) => `#/components/headers/${name}/schema`),
    ];
    for (const pointer of pointers) expect(() => ajv.compile({ $ref: `openapi${pointer}` })).not.toThrow();
  });

  it('gives every operation a unique operationId and at least one response', () => {
    const ids = operations.map(({ operation }) => operation.operationId);
    expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { operation } of operations) expect(Object.keys(operation.responses ?? {}).length).toBeGreaterThan(0);
  });

  it('describes every HTTP function, by route, method and operationId', () => {
    const http = functionDefinitions.filter((d) => d.kind === 'http');
    expect(http.length).toBeGreaterThan(0);
    for (const definition of http) {
      const options = definition.options;
      const path = `/${options.route ?? definition.name}`;
      for (const method of options.methods ?? []) {
        expect({ path, method, operationId: paths[path]?.[method.toLowerCase()]?.operationId }).toEqual({
          path,
          method,
          operationId: definition.name,
        });
      }
    }
    expect(operations).toHaveLength(http.reduce((n, d) => n + (d.options.methods?.length ?? 0), 0));
  });

  it('lists every problem code of the contract in the code enum', () => {
    expect([...openApiDocument.components.schemas.ProblemCode.enum].sort()).toEqual(Object.keys(PROBLEM_CODES).sort());
  });

  it('lists every health check and cause of the contract, the location check too', () => {
    const checkEnum = openApiDocument.components.schemas.HealthCheck.properties.check.enum;
    expect([...checkEnum]).toEqual([...HEALTH_CHECKS]);
    expect(checkEnum).toContain('location');
    const causeEnum = openApiDocument.components.schemas.HealthCheck.properties.cause.enum;
    expect([...causeEnum].sort((a, b) => String(a).localeCompare(String(b)))).toEqual(
      [...Object.keys(HEALTH_CAUSES), null].sort((a, b) => String(a).localeCompare(String(b))),
    );
  });

  it.each([
    ['/secrets/{name}', 'get', ['200', '400', '401', '403', '404', '409', '429', '500', '503']],
    ['/secrets/{name}/metadata', 'get', ['200', '400', '401', '403', '404', '409', '429', '500', '503']],
    ['/secrets/resolve', 'post', ['200', '400', '401', '403', '413', '429', '500']],
    ['/secrets', 'get', ['200', '401', '403', '429', '500', '503']],
    ['/health', 'get', ['200', '401', '403', '429', '500', '503']],
    ['/openapi.json', 'get', ['200']],
  ])('documents exactly the statuses %s %s answers', (path, method, statuses) => {
    expect(Object.keys(paths[path]?.[method]?.responses ?? {}).sort()).toEqual(statuses);
  });

  it('documents Retry-After as required on every 429 and WWW-Authenticate on every 401', () => {
    const responses = openApiDocument.components.responses;
    for (const { operation } of operations) {
      const all = operation.responses as Record<string, { $ref?: string }>;
      for (const [status, header] of [
        ['429', 'Retry-After'],
        ['401', 'WWW-Authenticate'],
      ] as const) {
        const ref = all[status]?.$ref;
        if (!ref && !all[status]) continue;
        const answer = resolvePointer(ref ?? '') as { headers?: Record<string, { $ref: string }> } | undefined;
        const headerRef = answer?.headers?.[header]?.$ref ?? '';
        expect(resolvePointer(headerRef)).toMatchObject({ required: true });
      }
    }
    expect(Object.keys(responses)).toEqual(
      expect.arrayContaining(['TooManyRequests', 'TooManyRequestsOrVaultThrottled', 'Unauthenticated']),
    );
  });

  it('is served as JSON, anonymously', () => {
    expect(paths['/openapi.json']?.get).toMatchObject({ security: [], responses: { '200': { content: { 'application/json': {} } } } });
  });
});
