// The Key Vault emulator's error type and the errors its store and handlers raise, with the
// service's codes and messages; keyVaultHttp.ts turns them into `{"error": {...}}` answers.

/** An error answered as Key Vault's error body: HTTP status, `error.code`, `error.message`, `error.innererror.code`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly inner?: string,
  ) {
    super(message);
  }
}

const NOT_FOUND_HINT =
  'If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182';

/** Key Vault REST: Get Secret (and the other operations on a live secret) answer 404 `SecretNotFound`. */
export function secretNotFound(nameOrId: string): HttpError {
  return new HttpError(404, 'SecretNotFound', `A secret with (name/id) ${nameOrId} was not found in this key vault. ${NOT_FOUND_HINT}`);
}

/** Key Vault REST: Get Deleted Secret, Recover Deleted Secret and Purge Deleted Secret answer 404 `SecretNotFound`. */
export function deletedSecretNotFound(): HttpError {
  return new HttpError(404, 'SecretNotFound', `Deleted Secret not found`);
}

export function methodNotAllowed(method: string): HttpError {
  return new HttpError(405, 'BadParameter', `The requested resource does not support http method '${method}'.`);
}

export function routeNotFound(path: string): HttpError {
  return new HttpError(404, 'NotFound', `The requested path '${path}' is not part of the emulated secrets API.`);
}

export function notSupported(operation: string): HttpError {
  return new HttpError(501, 'NotImplemented', `The ${operation} operation is not supported by the emulator.`);
}
