import { app } from '@azure/functions';
import { ForbiddenError } from '../shared/errors';
import { withCaller } from '../shared/http/httpPipeline';
import { jsonResponse } from '../shared/http/secretResponses';

/** GET /api/health : the latest health report, operators only; 200 when healthy, 503 when not. */
export const health = {
  name: 'health',
  options: {
    methods: ['GET' as const],
    route: 'health',
    authLevel: 'anonymous' as const,
    handler: withCaller({ operation: 'health' }, async (_request, _context, runtime, { caller }) => {
      if (!caller.operator) throw new ForbiddenError(`Caller "${caller.name}" is not an operator`);
      const report = await runtime.healthStore().latestReport();
      if (!report)
        return jsonResponse({ status: 'unknown', startedAt: null, durationMs: 0, vaults: [], detail: 'No health check has run yet' }, 503);
      return jsonResponse(report, report.status === 'failed' ? 503 : 200);
    }),
  },
};

app.http(health.name, health.options);
