import { HEALTH_CAUSES, HEALTH_CHECKS as HEALTH_CHECK_NAMES, HEALTH_STATUSES } from '../health/healthReport';
import { ROTATION_STATES } from '../rotation/rotationTypes';
import { MAX_BATCH_BODY_BYTES, MAX_BATCH_SECRETS } from '../secrets/batchRequest';

const schema = (name: string) => ({ $ref: `#/components/schemas/${name}` }) as const;
const response = (name: string) => ({ $ref: `#/components/responses/${name}` }) as const;
const header = (name: string) => ({ $ref: `#/components/headers/${name}` }) as const;
const nullableString = { type: ['string', 'null'] } as const;
const nullableTime = { type: ['string', 'null'], format: 'date-time' } as const;
const dateTime = { type: 'string', format: 'date-time' } as const;

const metadataProperties = {
  name: { type: 'string' },
  vault: { type: 'string', description: '"default" for KEY_VAULT_URI, else the alias' },
  version: nullableString,
  contentType: nullableString,
  enabled: { type: 'boolean' },
  notBefore: nullableTime,
  expiresOn: nullableTime,
  updatedOn: nullableTime,
} as const;

/** Every problem `code` of the contract (CONTRACT.md "HTTP API"). */
const PROBLEM_CODES = [
  'InvalidSecretName',
  'InvalidVersion',
  'InvalidRequest',
  'Unauthenticated',
  'Forbidden',
  'SecretNotFound',
  'SecretDisabled',
  'TooManySecrets',
  'TooManyRequests',
  'VaultThrottled',
  'VaultUnavailable',
  'VaultForbiddenByFirewall',
  'VaultAccessDenied',
  'RotationNotEnabled',
  'SecretNotRotatable',
  'InternalError',
] as const;

/** A problem answer whose `status` and `code` are narrowed to what this answer can carry. */
function problemAnswer<const S extends number, const C extends readonly (typeof PROBLEM_CODES)[number][], const H extends object>(
  description: string,
  status: S,
  codes: C,
  headers: H,
) {
  return {
    description,
    headers,
    content: {
      'application/problem+json': {
        schema: { allOf: [schema('Problem'), { properties: { status: { const: status }, code: { enum: codes } } }] },
      },
    },
  } as const;
}

const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-zA-Z-]{1,127}$' } } as const;
const versionParam = { name: 'version', in: 'query', required: false, schema: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' } } as const;
const vaultParam = {
  name: 'vault',
  in: 'query',
  required: false,
  schema: { type: 'string' },
  description: 'vault alias (KEY_VAULT_ALIASES); the default vault when absent',
} as const;
const secretHeaders = {
  ETag: header('ETag'),
  'Cache-Control': header('NoStore'),
  'X-Cache': header('XCache'),
  'X-Secret-Validity': header('XSecretValidity'),
} as const;

/** The problems every authenticated route can answer. */
const callerErrors = {
  '401': response('Unauthenticated'),
  '403': response('Forbidden'),
  '429': response('TooManyRequests'),
  '500': response('InternalError'),
} as const;
/** The problems of a route that reads one secret from a vault. */
const secretErrors = {
  '400': response('BadRequest'),
  ...callerErrors,
  '404': response('SecretNotFound'),
  '409': response('SecretDisabled'),
  '429': response('TooManyRequestsOrVaultThrottled'),
  '503': response('VaultUnavailable'),
} as const;

/** The OpenAPI 3.1 document of the HTTP API (served at /api/openapi.json). */
export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Key Vault secret broker',
    version: '1.0.0',
    description:
      'Resolves Azure Key Vault secrets for authenticated, authorised callers. Authenticate with an Entra ID bearer token or an x-api-key.',
  },
  servers: [{ url: '/api' }],
  security: [{ bearer: [] }, { apiKey: [] }],
  paths: {
    '/secrets/{name}': {
      get: {
        operationId: 'resolveSecret',
        summary: 'Resolve one secret (latest, or a pinned version)',
        parameters: [nameParam, versionParam, vaultParam],
        responses: {
          '200': {
            description: 'the secret',
            headers: secretHeaders,
            content: { 'application/json': { schema: schema('ResolvedSecret') } },
          },
          ...secretErrors,
        },
      },
    },
    '/secrets/{name}/metadata': {
      get: {
        operationId: 'secretMetadata',
        summary: 'Everything about a secret but its value',
        parameters: [nameParam, versionParam, vaultParam],
        responses: {
          '200': {
            description: 'the metadata',
            headers: secretHeaders,
            content: { 'application/json': { schema: schema('SecretMetadata') } },
          },
          ...secretErrors,
        },
      },
    },
    '/secrets/{name}/adoption': {
      get: {
        operationId: 'secretAdoption',
        summary: 'Which callers read which version of a secret last, and since when (callers with "operator": true only)',
        parameters: [nameParam, vaultParam],
        responses: {
          '200': {
            description: 'each version read, newest first, with the callers that read it last',
            headers: { 'Cache-Control': header('NoStore') },
            content: { 'application/json': { schema: schema('Adoption') } },
          },
          '400': response('BadRequest'),
          ...callerErrors,
        },
      },
    },
    '/secrets/{name}/rotate': {
      post: {
        operationId: 'rotateSecret',
        summary:
          'Start (or resume) the rotation of a secret tagged brokerRotation=entraApp and run every step that can run now (callers with "operator": true only)',
        parameters: [nameParam, vaultParam],
        responses: {
          '202': {
            description: "the rotation's state; it goes on (retirement waits for adoption) on the health check's timer",
            headers: { 'Cache-Control': header('NoStore') },
            content: { 'application/json': { schema: schema('Rotation') } },
          },
          '400': response('BadRequest'),
          ...callerErrors,
          '404': response('SecretNotFound'),
          '409': response('RotationRefused'),
          '503': response('VaultUnavailable'),
        },
      },
    },
    '/secrets/resolve': {
      post: {
        operationId: 'resolveSecrets',
        summary: `Resolve up to ${MAX_BATCH_SECRETS} secrets; each item succeeds or fails on its own`,
        requestBody: { required: true, content: { 'application/json': { schema: schema('BatchRequest') } } },
        responses: {
          '200': {
            description: 'one item per requested secret, in request order',
            headers: { 'Cache-Control': header('NoStore') },
            content: { 'application/json': { schema: schema('BatchResponse') } },
          },
          '400': response('BadRequest'),
          ...callerErrors,
          '413': response('TooManySecrets'),
        },
      },
    },
    '/secrets': {
      get: {
        operationId: 'listSecrets',
        summary: 'Names and metadata of the secrets the caller may read (never values)',
        responses: {
          '200': {
            description: 'the list',
            headers: { 'Cache-Control': header('NoStore') },
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: { secrets: { type: 'array', items: schema('SecretMetadata') } },
                  required: ['secrets'],
                },
              },
            },
          },
          ...callerErrors,
          '429': response('TooManyRequestsOrVaultThrottled'),
          '503': response('VaultUnavailable'),
        },
      },
    },
    '/health': {
      get: {
        operationId: 'health',
        summary: 'The latest health report (callers with "operator": true only)',
        responses: {
          '200': {
            description: 'healthy: the latest report is ok, warning or skipped',
            headers: { 'Cache-Control': header('NoStore') },
            content: { 'application/json': { schema: schema('HealthReport') } },
          },
          ...callerErrors,
          '503': {
            description: 'unhealthy: the latest report failed, or no health check has run yet',
            headers: { 'Cache-Control': header('NoStore') },
            content: { 'application/json': { schema: { oneOf: [schema('HealthReport'), schema('HealthNotRun')] } } },
          },
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openApi',
        summary: 'This document (anonymous; also the readiness probe)',
        security: [],
        responses: {
          '200': {
            description: 'OpenAPI 3.1 document',
            content: { 'application/json': { schema: { type: 'object', required: ['openapi', 'info', 'paths'] } } },
          },
        },
      },
    },
  },
  components: {
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'Entra ID app-only access token (client credentials) for AUTH_AUDIENCE; delegated (user) tokens are refused',
      },
      apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
    },
    headers: {
      ETag: { schema: { type: 'string' }, description: 'the version, quoted' },
      NoStore: { schema: { type: 'string', const: 'no-store' } },
      XCache: {
        schema: { type: 'string', enum: ['HIT', 'MISS', 'STALE'] },
        description: 'STALE: the vault failed and a cached value was served',
      },
      XSecretValidity: {
        schema: { type: 'string', enum: ['expired', 'not-yet-valid'] },
        description: 'present when Key Vault served a secret outside its validity window',
      },
      RetryAfter: { required: true, schema: schema('Seconds'), description: 'seconds to wait before trying again' },
      RetryAfterWhereKnown: { schema: schema('Seconds'), description: 'seconds to wait before trying again, where known' },
      WWWAuthenticate: { required: true, schema: { type: 'string' }, description: 'the credentials this API accepts (Bearer, ApiKey)' },
    },
    schemas: {
      Adoption: {
        type: 'object',
        properties: {
          vault: { type: 'string' },
          secret: { type: 'string' },
          versions: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                version: { type: 'string' },
                callers: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: { caller: { type: 'string' }, since: dateTime, lastRead: dateTime },
                    required: ['caller', 'since', 'lastRead'],
                  },
                },
              },
              required: ['version', 'callers'],
            },
          },
        },
        required: ['vault', 'secret', 'versions'],
      },
      Rotation: {
        type: 'object',
        properties: {
          outcome: { enum: ['started', 'resumed'] },
          id: { type: 'string' },
          vault: { type: 'string' },
          secret: { type: 'string' },
          reason: { enum: ['SecretNearExpiry', 'manual'] },
          state: { enum: ROTATION_STATES },
          applicationObjectId: { type: 'string' },
          oldVersion: { type: 'string' },
          newVersion: nullableString,
          newExpiresOn: nullableTime,
          holders: {
            type: 'array',
            items: { type: 'string' },
            description: 'callers still reading the old version: they hold retirement back',
          },
          deadline: { ...nullableTime, description: 'retirement at the latest' },
          retireReason: { enum: ['adopted', 'deadline', null] },
          steps: {
            type: 'object',
            properties: {
              startedAt: dateTime,
              storedAt: nullableTime,
              announcedAt: nullableTime,
              retiringAt: nullableTime,
              passwordRemovedAt: nullableTime,
              oldVersionDisabledAt: nullableTime,
              retiredAt: nullableTime,
            },
            required: ['startedAt', 'storedAt', 'announcedAt', 'retiringAt', 'passwordRemovedAt', 'oldVersionDisabledAt', 'retiredAt'],
          },
          updatedAt: dateTime,
          failure: {
            oneOf: [
              { type: 'null' },
              {
                type: 'object',
                properties: {
                  step: { type: 'string' },
                  service: { enum: ['graph', 'keyVault', 'broker'] },
                  code: { type: 'string', description: "the service's error code, e.g. Graph's Authorization_RequestDenied" },
                  status: { type: 'integer' },
                  message: { type: 'string' },
                  remedy: { type: 'string' },
                  at: dateTime,
                },
                required: ['step', 'service', 'code', 'message', 'remedy', 'at'],
              },
            ],
          },
        },
        required: [
          'outcome',
          'id',
          'vault',
          'secret',
          'reason',
          'state',
          'applicationObjectId',
          'oldVersion',
          'newVersion',
          'newExpiresOn',
          'holders',
          'deadline',
          'retireReason',
          'steps',
          'updatedAt',
          'failure',
        ],
      },
      SecretMetadata: { type: 'object', properties: metadataProperties, required: Object.keys(metadataProperties) },
      ResolvedSecret: {
        type: 'object',
        properties: { ...metadataProperties, value: { type: 'string' } },
        required: [...Object.keys(metadataProperties), 'value'],
      },
      BatchRequest: {
        type: 'object',
        required: ['secrets'],
        properties: {
          secrets: {
            type: 'array',
            minItems: 1,
            maxItems: MAX_BATCH_SECRETS,
            items: {
              oneOf: [
                { type: 'string' },
                {
                  type: 'object',
                  required: ['name'],
                  additionalProperties: false,
                  properties: { name: { type: 'string' }, version: { type: 'string' }, vault: { type: 'string' } },
                },
              ],
            },
          },
        },
      },
      BatchResponse: {
        type: 'object',
        required: ['secrets'],
        properties: {
          secrets: {
            type: 'array',
            items: {
              oneOf: [
                schema('ResolvedSecret'),
                {
                  type: 'object',
                  required: ['name', 'vault', 'error'],
                  properties: {
                    name: { type: 'string' },
                    vault: { type: 'string' },
                    error: {
                      type: 'object',
                      description: 'the status and code the single route would have answered',
                      required: ['status', 'code', 'detail'],
                      properties: { status: { type: 'integer' }, code: schema('ProblemCode'), detail: { type: 'string' } },
                    },
                  },
                },
              ],
            },
          },
        },
      },
      Seconds: { type: 'string', pattern: '^[0-9]+$' },
      ProblemCode: { type: 'string', enum: PROBLEM_CODES },
      Problem: {
        type: 'object',
        description: 'RFC 9457 problem details with a stable code',
        required: ['type', 'title', 'status', 'code', 'detail'],
        properties: {
          type: { type: 'string', format: 'uri' },
          title: { type: 'string' },
          status: { type: 'integer' },
          code: schema('ProblemCode'),
          detail: { type: 'string' },
          instance: { type: 'string' },
          errorId: { type: 'string', description: 'on 500 only: quote it to find the error in telemetry' },
        },
      },
      HealthStatus: { type: 'string', enum: HEALTH_STATUSES },
      HealthCheck: {
        type: 'object',
        required: ['check', 'target', 'status', 'cause', 'remedy', 'durationMs'],
        properties: {
          check: { type: 'string', enum: HEALTH_CHECK_NAMES },
          target: { ...nullableString, description: 'the secret or principal checked, where there is one' },
          status: schema('HealthStatus'),
          cause: { enum: [...HEALTH_CAUSES, null], description: 'null when ok' },
          remedy: { ...nullableString, description: 'one sentence an admin can act on; null when ok' },
          durationMs: { type: 'number', minimum: 0 },
        },
      },
      VaultHealth: {
        type: 'object',
        required: ['vault', 'vaultUri', 'status', 'checks'],
        properties: {
          vault: { type: 'string' },
          vaultUri: { type: 'string', format: 'uri' },
          status: schema('HealthStatus'),
          checks: { type: 'array', items: schema('HealthCheck') },
        },
      },
      HealthReport: {
        type: 'object',
        required: ['status', 'startedAt', 'durationMs', 'vaults'],
        properties: {
          status: schema('HealthStatus'),
          startedAt: { type: 'string', format: 'date-time' },
          durationMs: { type: 'number', minimum: 0 },
          vaults: { type: 'array', items: schema('VaultHealth') },
        },
      },
      HealthNotRun: {
        type: 'object',
        description: 'no health check has run yet',
        required: ['status', 'startedAt', 'durationMs', 'vaults', 'detail'],
        properties: {
          status: { const: 'unknown' },
          startedAt: { type: 'null' },
          durationMs: { const: 0 },
          vaults: { type: 'array', maxItems: 0 },
          detail: { type: 'string' },
        },
      },
    },
    responses: {
      BadRequest: problemAnswer('malformed request', 400, ['InvalidSecretName', 'InvalidVersion', 'InvalidRequest'], {}),
      Unauthenticated: problemAnswer('no credential, or one that proves no identity', 401, ['Unauthenticated'], {
        'WWW-Authenticate': header('WWWAuthenticate'),
      }),
      Forbidden: problemAnswer('the access policy does not allow this caller this', 403, ['Forbidden'], {}),
      SecretNotFound: problemAnswer('no such secret or version', 404, ['SecretNotFound'], {}),
      SecretDisabled: problemAnswer('the secret (version) is disabled', 409, ['SecretDisabled'], {}),
      RotationRefused: problemAnswer(
        'rotation is off (RotationNotEnabled: ROTATION_IDENTITY_CLIENT_ID unset), or the secret is not tagged for it, its tags are invalid, or ROTATION_TARGETS does not list it with the application its tag names (SecretNotRotatable)',
        409,
        ['RotationNotEnabled', 'SecretNotRotatable'],
        {},
      ),
      TooManySecrets: problemAnswer(
        `more than ${MAX_BATCH_SECRETS} secrets, or a body past ${MAX_BATCH_BODY_BYTES} bytes`,
        413,
        ['TooManySecrets'],
        {},
      ),
      TooManyRequests: problemAnswer(
        "past the caller's rateLimit (a batch counts its items), or past the refusal limit of the client's address",
        429,
        ['TooManyRequests'],
        {
          'Retry-After': header('RetryAfter'),
        },
      ),
      TooManyRequestsOrVaultThrottled: problemAnswer(
        "past the caller's rateLimit or the refusal limit of the client's address (TooManyRequests), or Key Vault throttles the broker (VaultThrottled)",
        429,
        ['TooManyRequests', 'VaultThrottled'],
        { 'Retry-After': header('RetryAfter') },
      ),
      VaultUnavailable: problemAnswer(
        'the vault cannot be read: unreachable, firewall, or missing permission',
        503,
        ['VaultUnavailable', 'VaultForbiddenByFirewall', 'VaultAccessDenied'],
        { 'Retry-After': header('RetryAfterWhereKnown') },
      ),
      InternalError: problemAnswer('an unexpected error; errorId finds it in telemetry', 500, ['InternalError'], {}),
    },
  },
} as const;
