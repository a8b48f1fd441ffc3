import { app } from '@azure/functions';
import { adoptionAnswer, adoptionRef } from '../shared/adoption/adoptionRules';
import { ForbiddenError } from '../shared/errors';
import { withCaller } from '../shared/http/httpPipeline';
import { jsonResponse } from '../shared/http/secretResponses';

/**
 * GET /api/secrets/{name}/adoption?vault= : operators only; each version of the secret read by a
 * caller, newest first, with the callers that read it last and since when (docs/http-api.md).
 */
export const secretAdoption = {
  name: 'secretAdoption',
  options: {
    methods: ['GET' as const],
    route: 'secrets/{name}/adoption',
    authLevel: 'anonymous' as const,
    handler: withCaller({ operation: 'adoption' }, async (request, _context, runtime, { caller }) => {
      if (!caller.operator) throw new ForbiddenError(`Caller "${caller.name}" is not an operator`);
      const { vault, secret } = adoptionRef(request.params.name ?? '', request.query.get('vault'), runtime.config.vaults);
      const rows = await runtime.adoption.read(vault, secret);
      return jsonResponse(adoptionAnswer(vault, rows[0]?.secret ?? secret, rows));
    }),
  },
};

app.http(secretAdoption.name, secretAdoption.options);
