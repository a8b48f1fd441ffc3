import { randomUUID } from 'node:crypto';
import { ARM_ENDPOINT, ArmError, type ArmAnswer, type Json, regionName, subscriptionId } from './armCore';

/** What a long-running operation needs: what it is about, and what happens when it completes. */
export interface LroStart {
  /** Resource provider namespace, e.g. `Microsoft.Storage` (part of the operation URL). */
  namespace: string;
  location: string;
  apiVersion: string;
  /** The resource as it is now (Location-mode polls answer it once done). */
  current(): Json;
  /** Called once, when a poll first finds the operation complete. */
  complete(): void;
}

interface Operation extends LroStart {
  id: string;
  mode: 'location' | 'async';
  pendingPolls: number;
  startTime: string;
  endTime: string | undefined;
  url: string;
}

/**
 * The two asynchronous patterns ARM resource providers use, as core-lro polls them:
 *
 * - `Location` (Storage, App Service): the PUT answers 202 with `Location` and `Retry-After: 0`;
 *   GETting it answers 202 (same headers) while in progress, then 200 with the resource.
 * - `Azure-AsyncOperation` (Log Analytics, Event Grid): the PUT answers 201 with the resource in a
 *   non-terminal `provisioningState` and the header; the operation answers `{"status":"InProgress"}`
 *   while in progress, then `{"status":"Succeeded"}`; the client then GETs the resource.
 *
 * Each operation stays in progress for `pendingPolls()` polls (default 1); the resource completes
 * (`provisioningState: Succeeded`) when a poll first finds it done.
 */
// Learn: "Track asynchronous Azure operations" (201/202; Azure-AsyncOperation or Location; Retry-After; {status, startTime, endTime})
export class LroManager {
  private readonly operations = new Map<string, Operation>();

  constructor(private readonly pendingPolls: () => number) {}

  /** Registers a Location-mode operation; returns the headers of the 202. */
  startLocation(start: LroStart): Record<string, string> {
    const op = this.register(start, 'location');
    return { Location: op.url, 'Retry-After': '0' };
  }

  /** Registers an Azure-AsyncOperation-mode operation; returns the headers of the 201. */
  startAsync(start: LroStart): Record<string, string> {
    const op = this.register(start, 'async');
    return { 'Azure-AsyncOperation': op.url, 'Retry-After': '0' };
  }

  /** Answers a poll of operation `id` (from either URL form), or ARM's 404 for an unknown one. */
  poll(id: string): ArmAnswer {
    const op = this.operations.get(id.toLowerCase());
    // Unsourced: modelled from ARM's 404 for an unknown operation; the code OperationNotFound is not verified.
    if (!op) throw new ArmError(404, 'OperationNotFound', `The operation '${id}' could not be found.`);
    const done = op.pendingPolls <= 0;
    if (!done) {
      op.pendingPolls--;
    } else if (op.endTime === undefined) {
      op.endTime = new Date().toISOString();
      op.complete();
    }
    // Learn: "Track asynchronous Azure operations" — a Location poll answers 202 while running, then 200 with the resource.
    if (op.mode === 'location') {
      return done ? { status: 200, body: op.current() } : { status: 202, headers: { Location: op.url, 'Retry-After': '0' } };
    }
    // Learn: "Track asynchronous Azure operations" — the Azure-AsyncOperation body: id, name, status, startTime, endTime.
    const path = new URL(op.url).pathname;
    const body: Json = { id: path, name: op.id, status: done ? 'Succeeded' : 'InProgress', startTime: op.startTime };
    if (done) body['endTime'] = op.endTime;
    return { status: 200, body, headers: done ? {} : { 'Retry-After': '0' } };
  }

  private register(start: LroStart, mode: Operation['mode']): Operation {
    const id = randomUUID();
    // Unsourced: the operation URL's segments (locations/{region}/operationResults|operationStatuses) are modelled, not verified per provider.
    const segment = mode === 'location' ? 'operationResults' : 'operationStatuses';
    const url =
      `${ARM_ENDPOINT}${subscriptionId()}/providers/${start.namespace}/locations/${regionName(start.location)}/${segment}/${id}` +
      `?api-version=${encodeURIComponent(start.apiVersion)}`;
    const op: Operation = {
      ...start,
      id,
      mode,
      pendingPolls: this.pendingPolls(),
      startTime: new Date().toISOString(),
      endTime: undefined,
      url,
    };
    this.operations.set(id, op);
    return op;
  }
}
