import { isRestError, type RestError } from '@azure/core-rest-pipeline';

/** Awaits a promise that must reject with a RestError (an Azure SDK's failed call) and returns that error. */
export async function restError(promise: Promise<unknown>): Promise<RestError> {
  const err = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e,
  );
  if (!isRestError(err)) throw err;
  return err;
}
