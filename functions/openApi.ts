import { app } from '@azure/functions';
import { openApiDocument } from '../shared/http/openApiDocument';

const body = JSON.stringify(openApiDocument);

/**
 * GET /api/openapi.json : the API description, anonymous. It needs no settings and no vault, so it
 * answers as soon as the host is up: use it as the readiness probe.
 */
export const openApi = {
  name: 'openApi',
  options: {
    methods: ['GET' as const],
    route: 'openapi.json',
    authLevel: 'anonymous' as const,
    handler: () =>
      Promise.resolve({
        status: 200,
        headers: { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'public, max-age=300' },
        body,
      }),
  },
};

app.http(openApi.name, openApi.options);
