import { app } from '@azure/functions';
import { adoptionRef } from '../shared/adoption/adoptionRules';
import { ForbiddenError } from '../shared/errors';
import { withCaller } from '../shared/http/httpPipeline';
import { startRotation } from '../shared/http/rotationAnswer';
import { jsonResponse } from '../shared/http/secretResponses';

/**
 * POST /api/secrets/{name}/rotate?vault= : operators only; starts (or resumes) the rotation of a
 * secret tagged for it and answers 202 with the rotation's state (docs/http-api.md).
 */
export const rotateSecret = {
  name: 'rotateSecret',
  options: {
    methods: ['POST' as const],
    route: 'secrets/{name}/rotate',
    authLevel: 'anonymous' as const,
    handler: withCaller({ operation: 'rotate' }, async (request, _context, runtime, { caller }) => {
      if (!caller.operator) throw new ForbiddenError(`Caller "${caller.name}" is not an operator`);
      const { vault, secret } = adoptionRef(request.params.name ?? '', request.query.get('vault'), runtime.config.vaults);
      const answer = await startRotation(runtime.rotation()?.runner, vault, secret);
      return jsonResponse(answer, 202);
    }),
  },
};

app.http(rotateSecret.name, rotateSecret.options);
