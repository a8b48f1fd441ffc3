import { app } from '@azure/functions';
import type { HttpHandler } from '@azure/functions';
import { withCaller } from '../shared/http/httpPipeline';
import { answerFromMemory } from '../shared/http/hitPath';
import { methodNotAllowedResponse } from '../shared/http/problem';
import { secretBody, secretRefOf, secretResponse } from '../shared/http/secretResponses';
import { resolveSecrets } from './resolveSecrets';

const resolveOne = withCaller({ operation: 'resolve' }, async (request, _context, runtime, { caller, audit }) => {
  const resolution = await runtime.resolver.resolve(caller, secretRefOf(request), audit);
  const { secret } = resolution;
  // Version adoption: a Map update in memory, written to storage at most every 30 s.
  runtime.adoption.record(secret.vault, secret.name, caller.name, secret.version);
  return secretResponse(resolution, secretBody(resolution));
});

/**
 * `secrets/resolve` is the batch route (POST); the hosts hand a GET of it to `secrets/{name}`
 * (routes match case-insensitively), which answers 405 like any known route asked with another
 * method, before authentication.
 */
const handler: HttpHandler = (request, context) =>
  (request.params.name ?? '').toLowerCase() === resolveSecrets.options.route.split('/')[1]
    ? Promise.resolve(methodNotAllowedResponse(request.method, resolveSecrets.options.methods))
    : // A fresh cache hit for a known API key is answered at once; everything else is awaited.
      (answerFromMemory(request, context) ?? resolveOne(request, context));

/** GET /api/secrets/{name}?version=&vault= : one secret with its value. */
export const resolveSecret = {
  name: 'resolveSecret',
  options: {
    methods: ['GET' as const],
    route: 'secrets/{name}',
    authLevel: 'anonymous' as const,
    handler,
  },
};

app.http(resolveSecret.name, resolveSecret.options);
