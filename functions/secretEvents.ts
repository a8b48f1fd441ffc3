import { app } from '@azure/functions';
import type { EventGridFunctionOptions, InvocationContext } from '@azure/functions';
import { handleSecretEvent } from '../shared/events/handleSecretEvent';
import { getRuntime } from '../shared/runtime';

/**
 * Key Vault secret events (Event Grid schema or CloudEvents 1.0): drop the stale cached value on
 * every instance and notify the secret's consumers. A failure fails this invocation only, so Event
 * Grid redelivers the event; consumers that already answered 2xx are not sent it again.
 */
export const secretEvents = {
  name: 'secretEvents',
  options: {
    handler: async (event: unknown, context: InvocationContext): Promise<void> => {
      try {
        await handleSecretEvent(event, getRuntime().events(), (line) => context.log(line));
      } catch (err: unknown) {
        context.error(err);
        throw err;
      }
    },
  } satisfies EventGridFunctionOptions<unknown>,
};

app.eventGrid(secretEvents.name, secretEvents.options);
