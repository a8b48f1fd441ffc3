import { app } from '@azure/functions';
import { withCaller } from '../shared/http/httpPipeline';
import { jsonResponse, metadataBody } from '../shared/http/secretResponses';

/** GET /api/secrets : names and metadata of the secrets the caller may read, never values. */
export const listSecrets = {
  name: 'listSecrets',
  options: {
    methods: ['GET' as const],
    route: 'secrets',
    authLevel: 'anonymous' as const,
    handler: withCaller({ operation: 'list' }, async (_request, _context, runtime, { caller, audit }) => {
      const items = await runtime.resolver.list(caller, audit);
      return jsonResponse({ secrets: items.map(metadataBody) });
    }),
  },
};

app.http(listSecrets.name, listSecrets.options);
