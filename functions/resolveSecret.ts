import { app } from '@azure/functions';
import { withCaller } from '../shared/http/httpPipeline';
import { secretBody, secretRefOf, secretResponse } from '../shared/http/secretResponses';

/** GET /api/secrets/{name}?version=&vault= : one secret with its value. */
export const resolveSecret = {
  name: 'resolveSecret',
  options: {
    methods: ['GET' as const],
    route: 'secrets/{name}',
    authLevel: 'anonymous' as const,
    handler: withCaller({ operation: 'resolve' }, async (request, _context, runtime, { caller, audit }) => {
      const resolution = await runtime.resolver.resolve(caller, secretRefOf(request), audit);
      return secretResponse(resolution, secretBody(resolution));
    }),
  },
};

app.http(resolveSecret.name, resolveSecret.options);
