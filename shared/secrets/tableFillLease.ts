import type { TableClient } from '@azure/data-tables';
import { describeStorageError as describe, tableErrorStatus } from '../storage/tableStorage';
import { isHeld } from './sharedCacheRows';
import type { LeaseColumns, Slot } from './sharedCacheRows';

/**
 * The fill lease of the shared cache: a row `<row key>:lease` in the slot's partition
 * (`leaseUntil`, `writtenBy`), created by the instance that reads the vault for the others. Its
 * holder stores the secret and releases the lease in one entity group transaction that requires
 * the lease unchanged (ETag): when `SharedSecretCache.delete` removed the lease meanwhile, the old
 * value is not stored.
 */

/** The lease's `leaseUntil` once its holder is done: any time in the past frees it. */
const RELEASED = new Date(0).toISOString();

/** What the lease calls need of the cache that makes them. */
export interface LeaseContext {
  readonly now: () => number;
  /** How long a taken lease holds. */
  readonly leaseMs: number;
  /** Stored as `writtenBy`. */
  readonly instanceId: string;
  readonly log: (line: string) => void;
  /** A fresh abort signal per storage call (the storage timeout). */
  readonly signal: () => AbortSignal;
}

/**
 * Takes the fill lease: resolves with its ETag, or undefined when another instance holds it.
 * A lease left behind by an instance that stopped is taken over once it has run out.
 * @throws the storage error.
 */
export async function takeLease(client: TableClient, slot: Slot, context: LeaseContext): Promise<string | undefined> {
  const lease = {
    partitionKey: slot.partition,
    rowKey: slot.leaseKey,
    leaseUntil: new Date(context.now() + context.leaseMs).toISOString(),
    writtenBy: context.instanceId,
  };
  try {
    return (await client.createEntity<LeaseColumns>(lease, { abortSignal: context.signal() })).etag ?? '*';
  } catch (err: unknown) {
    if (tableErrorStatus(err) !== 409) throw err;
  }
  let current: LeaseColumns & { etag: string };
  try {
    current = await client.getEntity<LeaseColumns>(slot.partition, slot.leaseKey, { abortSignal: context.signal() });
  } catch (err: unknown) {
    // Released just now: its holder's copy is there or about to be.
    if (tableErrorStatus(err) === 404) return undefined;
    throw err;
  }
  if (isHeld(current, context.now())) return undefined;
  try {
    const updated = await client.updateEntity<LeaseColumns>(lease, 'Replace', { etag: current.etag, abortSignal: context.signal() });
    return updated.etag ?? '*';
  } catch (err: unknown) {
    // Someone else took it over first, or released and deleted it.
    const status = tableErrorStatus(err);
    if (status === 412 || status === 404) return undefined;
    throw err;
  }
}

/** The lease as its holder leaves it in the transaction that stores the copy: run out. */
export function releasedLease(slot: Slot, instanceId: string): { partitionKey: string; rowKey: string } & LeaseColumns {
  return { partitionKey: slot.partition, rowKey: slot.leaseKey, leaseUntil: RELEASED, writtenBy: instanceId };
}

/** Deletes the lease if it is still the one this instance wrote. Best effort: a left lease runs out. */
export async function releaseLease(client: TableClient, slot: Slot, context: LeaseContext, etag: string): Promise<void> {
  try {
    await client.deleteEntity(slot.partition, slot.leaseKey, { etag, abortSignal: context.signal() });
  } catch (err: unknown) {
    const status = tableErrorStatus(err);
    if (status !== 404 && status !== 412) context.log(`Shared cache: releasing the fill lease of ${slot.label} failed: ${describe(err)}`);
  }
}
