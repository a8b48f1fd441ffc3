/**
 * The one loop every resource of a deployment goes through: read what Azure has, compare the
 * properties the deployment manages, and create or update only when they differ. Running it twice
 * changes nothing the second time; a run that stopped half way picks up where Azure stands.
 */
import { describeAzureError, statusOf } from './azureErrors';
import { differences, describeChange, type Change, type Difference } from './changes';

/** A failed step: names the resource and says what Azure answered. */
export class DeployError extends Error {
  constructor(
    readonly resource: string,
    readonly azure: string,
  ) {
    super(`${resource}: ${azure}`);
  }
}

/** Where a deployment reports its progress, one line at a time. */
export interface Progress {
  line(text: string): void;
}

export interface RunOptions {
  /** Read and compare only: nothing is created or changed. */
  readonly whatIf: boolean;
  readonly progress: Progress;
  /** Every change, in order, for the summary. */
  readonly changes: Change[];
}

export interface Resource<T> {
  /** What and which, e.g. `storage account contosobrokerst`. */
  readonly resource: string;
  /** What Azure has, or undefined when it does not exist (a 404). */
  read(): Promise<T | undefined>;
  /** The properties the deployment manages, as the SDK's model names them. */
  readonly desired: unknown;
  /** How `current` differs from {@link desired}; default {@link differences}. */
  compare?(current: T): Difference[];
  /** Creates or updates; answers what Azure then has. */
  apply(current: T | undefined): Promise<T>;
  /** Print changed property names only (app settings). */
  readonly hideValues?: boolean;
  /** Values sent that must not appear in an error line, should Azure's message quote them (app settings). */
  readonly secrets?: readonly string[];
}

/**
 * Brings one resource to its desired state (or, with `whatIf`, says what that would take).
 * Answers the resource as it then is (the current one under `whatIf`; undefined if it would be created).
 */
export async function reconcile<T>(run: RunOptions, r: Resource<T>): Promise<T | undefined> {
  const started = Date.now();
  const current = await step(r.resource, 'read', () => r.read());
  const diff = current === undefined ? [] : r.compare ? r.compare(current) : differences(r.desired, current);
  const change: Change = {
    resource: r.resource,
    action: current === undefined ? 'create' : diff.length > 0 ? 'update' : 'unchanged',
    differences: diff,
    hideValues: r.hideValues,
  };
  run.changes.push(change);
  if (run.whatIf || change.action === 'unchanged') {
    for (const line of describeChange(change, run.whatIf)) run.progress.line(line);
    return current;
  }
  const result = await step(r.resource, change.action === 'create' ? 'create' : 'update', () => r.apply(current), r.secrets);
  const lines = describeChange(change);
  lines[0] = `${lines[0]}d (${((Date.now() - started) / 1000).toFixed(1)} s)`;
  for (const line of lines) run.progress.line(line);
  return result;
}

/** Values shorter than this are not taken out of a message: they would match ordinary words. */
const MIN_REDACTED_CHARS = 8;

/**
 * Runs one call against Azure; a failure becomes a {@link DeployError} naming the resource and Azure's
 * answer, with any of `secrets` that Azure's message quotes replaced by `<redacted>`.
 */
export async function step<T>(resource: string, what: string, call: () => Promise<T>, secrets: readonly string[] = []): Promise<T> {
  try {
    return await call();
  } catch (err: unknown) {
    if (err instanceof DeployError) throw err;
    let text = describeAzureError(err);
    for (const value of secrets) if (value.length >= MIN_REDACTED_CHARS) text = text.split(value).join('<redacted>');
    throw new DeployError(resource, `${what} failed: ${text}`);
  }
}

/** `read` for a GET that answers 404 when the resource does not exist. */
export async function orAbsent<T>(get: () => Promise<T>): Promise<T | undefined> {
  try {
    return await get();
  } catch (err: unknown) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/**
 * Retries `call` while `retryable(err)` holds, every `intervalMs`, until `deadlineMs` has passed:
 * for what Azure itself says takes time (a new identity not yet replicated, a new role not yet
 * applied), never for a refusal that will not change.
 */
export async function retrying<T>(
  call: () => Promise<T>,
  retryable: (err: unknown) => boolean,
  options: { intervalMs: number; deadlineMs: number; onRetry?: (err: unknown) => void },
): Promise<T> {
  const until = Date.now() + options.deadlineMs;
  for (;;) {
    try {
      return await call();
    } catch (err: unknown) {
      if (!retryable(err) || Date.now() + options.intervalMs > until) throw err;
      options.onRetry?.(err);
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    }
  }
}
