/**
 * How a rotation step's failure is told (see docs/rotation.md): Graph's and Key Vault's errors, and
 * the broker's own refusals, as a {@link RotationFailure} with the service's code and message and a
 * remedy. Nothing of a response body or a secret reaches it.
 */
import { isRestError } from '@azure/core-rest-pipeline';
import { GraphError } from '../graph/graphClient';
import { remedyOf } from './rotationSteps';
import type { ResumableState, RotationFailure, RotationRecord, RotationService, RotationStep } from './rotationTypes';

/** Longest message kept in a failure; the services' are one sentence. */
const MAX_MESSAGE = 300;

/** A step refused by the broker's own rule (e.g. the two-password limit). */
export class BrokerRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A Key Vault call that failed, as code, status and a one-line message (never a body or a value). */
export class VaultStepError extends Error {
  constructor(
    readonly code: string,
    readonly status: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** Runs a Key Vault call, turning its failure into a {@link VaultStepError}; `secret` is scrubbed from the message. */
export async function vaultCall<T>(fn: () => Promise<T>, secret?: string): Promise<T> {
  try {
    return await fn();
  } catch (err: unknown) {
    throw vaultError(err, secret);
  }
}

export function vaultError(err: unknown, secret?: string): Error {
  if (!isRestError(err)) {
    // No token for the rotation identity, or a call that timed out, is a step failure too: it shows in the record and the health report.
    const name = err instanceof Error ? err.name : '';
    if (name === 'CredentialUnavailableError' || name === 'AuthenticationError')
      return new VaultStepError(name, undefined, 'No token for Key Vault.');
    if (name === 'AbortError') return new VaultStepError(name, undefined, 'The request did not complete in time.');
    return err instanceof Error ? err : new Error('Key Vault call failed');
  }
  const firstLine = (err.message.split('\n')[0] ?? '').slice(0, MAX_MESSAGE);
  const message = secret && firstLine.includes(secret) ? 'Key Vault refused the request.' : firstLine;
  return new VaultStepError(err.code ?? (err.statusCode ? `HTTP${err.statusCode}` : 'RestError'), err.statusCode, message);
}

/** A failure to record for errors of the services or the broker's rules; undefined for anything else (to rethrow). */
export function failureOf(
  err: unknown,
  step: RotationStep,
  record: Pick<RotationRecord, 'applicationObjectId'>,
  resumeState: ResumableState,
  at: Date,
): RotationFailure | undefined {
  let service: RotationService;
  let code: string;
  let status: number | undefined;
  let message: string;
  if (err instanceof GraphError) {
    service = 'graph';
    code = err.code;
    status = err.status || undefined;
    message = err.graphMessage;
  } else if (err instanceof VaultStepError) {
    service = 'keyVault';
    code = err.code;
    status = err.status;
    message = err.message;
  } else if (err instanceof BrokerRefusal) {
    service = 'broker';
    code = err.code;
    message = err.message;
  } else {
    return undefined;
  }
  return {
    step,
    resumeState,
    service,
    code,
    ...(status === undefined ? {} : { status }),
    message: message.slice(0, MAX_MESSAGE),
    remedy: remedyOf(service, code, record),
    at: at.toISOString(),
  };
}
