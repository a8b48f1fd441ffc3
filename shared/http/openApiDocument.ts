import { MAX_BATCH_SECRETS } from '../secrets/batchRequest';

const problem = { $ref: '#/components/responses/Problem' };
const nullableString = { type: ['string', 'null'] };
const nullableTime = { type: ['string', 'null'], format: 'date-time' };

const metadataProperties = {
  name: { type: 'string' },
  vault: { type: 'string', description: '"default" for KEY_VAULT_URI, else the alias' },
  version: nullableString,
  contentType: nullableString,
  enabled: { type: 'boolean' },
  notBefore: nullableTime,
  expiresOn: nullableTime,
  updatedOn: nullableTime,
};

const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-zA-Z-]{1,127}$' } };
const versionParam = { name: 'version', in: 'query', required: false, schema: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' } };
const vaultParam = {
  name: 'vault',
  in: 'query',
  required: false,
  schema: { type: 'string' },
  description: 'vault alias (KEY_VAULT_ALIASES); the default vault when absent',
};
const secretHeaders = {
  ETag: { schema: { type: 'string' }, description: 'the version, quoted' },
  'Cache-Control': { schema: { type: 'string', const: 'no-store' } },
  'X-Secret-Validity': {
    schema: { type: 'string', enum: ['expired', 'not-yet-valid'] },
    description: 'present when Key Vault served a secret outside its validity window',
  },
};
const errors = { '400': problem, '401': problem, '403': problem, '404': problem, '409': problem, '429': problem, '503': problem };

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
            content: { 'application/json': { schema: { $ref: '#/components/schemas/ResolvedSecret' } } },
          },
          ...errors,
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
            content: { 'application/json': { schema: { $ref: '#/components/schemas/SecretMetadata' } } },
          },
          ...errors,
        },
      },
    },
    '/secrets/resolve': {
      post: {
        operationId: 'resolveSecrets',
        summary: `Resolve up to ${MAX_BATCH_SECRETS} secrets; each item succeeds or fails on its own`,
        requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchRequest' } } } },
        responses: {
          '200': {
            description: 'one item per requested secret, in request order',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchResponse' } } },
          },
          '400': problem,
          '401': problem,
          '413': problem,
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
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: { secrets: { type: 'array', items: { $ref: '#/components/schemas/SecretMetadata' } } },
                  required: ['secrets'],
                },
              },
            },
          },
          '401': problem,
          '403': problem,
          '429': problem,
          '503': problem,
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openApi',
        summary: 'This document (anonymous; also the readiness probe)',
        security: [],
        responses: { '200': { description: 'OpenAPI 3.1 document' } },
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
    schemas: {
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
                { $ref: '#/components/schemas/ResolvedSecret' },
                {
                  type: 'object',
                  required: ['name', 'vault', 'error'],
                  properties: {
                    name: { type: 'string' },
                    vault: { type: 'string' },
                    error: {
                      type: 'object',
                      required: ['status', 'code', 'detail'],
                      properties: { status: { type: 'integer' }, code: { type: 'string' }, detail: { type: 'string' } },
                    },
                  },
                },
              ],
            },
          },
        },
      },
      Problem: {
        type: 'object',
        required: ['type', 'title', 'status', 'code', 'detail'],
        properties: {
          type: { type: 'string', format: 'uri' },
          title: { type: 'string' },
          status: { type: 'integer' },
          code: {
            type: 'string',
            enum: [
              'InvalidSecretName',
              'InvalidVersion',
              'InvalidRequest',
              'Unauthenticated',
              'Forbidden',
              'SecretNotFound',
              'SecretDisabled',
              'TooManySecrets',
              'VaultThrottled',
              'VaultUnavailable',
              'VaultForbiddenByFirewall',
              'VaultAccessDenied',
              'InternalError',
            ],
          },
          detail: { type: 'string' },
          instance: { type: 'string' },
          errorId: { type: 'string' },
        },
      },
    },
    responses: {
      Problem: {
        description: 'RFC 9457 problem',
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      },
    },
  },
} as const;
