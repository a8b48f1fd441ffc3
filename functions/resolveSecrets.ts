import { app } from '@azure/functions';
import { DEFAULT_VAULT_ALIAS } from '../shared/config';
import { withCaller } from '../shared/http/httpPipeline';
import { readJsonBody } from '../shared/http/readJsonBody';
import { batchError, jsonResponse, secretBody } from '../shared/http/secretResponses';
import { mapLimit } from '../shared/mapLimit';
import { MAX_BATCH_BODY_BYTES, batchBodyTooLarge, parseBatchRequest } from '../shared/secrets/batchRequest';

/** Vault reads one batch runs at once (the cache coalesces duplicates). */
const BATCH_CONCURRENCY = 16;

/** POST /api/secrets/resolve : up to 100 secrets; each item succeeds or fails on its own. */
export const resolveSecrets = {
  name: 'resolveSecrets',
  options: {
    methods: ['POST' as const],
    route: 'secrets/resolve',
    authLevel: 'anonymous' as const,
    handler: withCaller({ operation: 'batch', chargePerItem: true }, async (request, _context, runtime, { caller, audit, charge }) => {
      const refs = parseBatchRequest(await readJsonBody(request, MAX_BATCH_BODY_BYTES, batchBodyTooLarge));
      charge(refs.length);
      // One deadline for the whole batch: items that start late do not wait a throttled vault out anew.
      const deadline = runtime.resolver.deadline();
      const secrets = await mapLimit(refs, BATCH_CONCURRENCY, async (ref, item) => {
        try {
          const resolution = await runtime.resolver.resolve(caller, ref, audit, { item, deadline });
          // Version adoption, per item: a Map update in memory, written to storage at most every 30 s.
          runtime.adoption.record(resolution.secret.vault, resolution.secret.name, caller.name, resolution.secret.version);
          return secretBody(resolution);
        } catch (err: unknown) {
          return batchError(ref.name, ref.vault ?? DEFAULT_VAULT_ALIAS, err);
        }
      });
      return jsonResponse({ secrets });
    }),
  },
};

app.http(resolveSecrets.name, resolveSecrets.options);
