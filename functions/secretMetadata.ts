import { app } from '@azure/functions';
import { withCaller } from '../shared/http/httpPipeline';
import { metadataBody, secretRefOf, secretResponse } from '../shared/http/secretResponses';

/** GET /api/secrets/{name}/metadata : everything but the value (the "validate" an admin presses). */
export const secretMetadata = {
  name: 'secretMetadata',
  options: {
    methods: ['GET' as const],
    route: 'secrets/{name}/metadata',
    authLevel: 'anonymous' as const,
    handler: withCaller({ operation: 'metadata' }, async (request, _context, runtime, { caller, audit }) => {
      const resolution = await runtime.resolver.resolve(caller, secretRefOf(request), audit, { operation: 'metadata' });
      return secretResponse(resolution, metadataBody(resolution.secret));
    }),
  },
};

app.http(secretMetadata.name, secretMetadata.options);
