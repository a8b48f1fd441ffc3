/**
 * A stand-in for `@azure/functions-core`, the module the Node.js worker provides to the
 * programming model at run time (azure-functions-nodejs-worker, `types-core/index.d.ts`). Only
 * the benchmark process resolves that name to this file (bench/workerPath.ts); production code
 * never sees it. It keeps what the app registers so the benchmark can invoke it as the worker does.
 */

/** What `registerFunction` receives: the function's name and its bindings, as the worker gets them. */
export interface FunctionMetadata {
  name: string;
  bindings: Record<string, { type: string; direction?: string; [key: string]: unknown }>;
  [key: string]: unknown;
}

/** The worker's view of one invocation (`CoreInvocationContext`). */
export interface CoreInvocationContext {
  invocationId: string;
  request: unknown;
  metadata: FunctionMetadata;
  state?: string;
  log(level: string, category: string, message: string): void;
}

/** The parts of the programming model (`ProgrammingModel` of @azure/functions) the worker calls. */
export interface InvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], handler: (...args: unknown[]) => unknown): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<unknown>;
}
export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(coreCtx: CoreInvocationContext): InvocationModel;
}

export class Disposable {
  constructor(private readonly callOnDispose: () => void) {}
  dispose(): void {
    this.callOnDispose();
  }
}

let model: ProgrammingModel | undefined;
/** Every function registered so far, by name. */
export const registered = new Map<string, { metadata: FunctionMetadata; callback: (...args: unknown[]) => unknown }>();

export function setProgrammingModel(programmingModel: ProgrammingModel): void {
  model = programmingModel;
}

export function getProgrammingModel(): ProgrammingModel {
  if (!model) throw new Error('no programming model was set');
  return model;
}

export function registerFunction(metadata: FunctionMetadata, callback: (...args: unknown[]) => unknown): Disposable {
  registered.set(metadata.name, { metadata, callback });
  return new Disposable(() => registered.delete(metadata.name));
}

export function registerHook(): Disposable {
  return new Disposable(() => undefined);
}

/** Logs outside an invocation; the worker sends each to the host as an RpcLog message. */
export function log(level: string, category: string, message: string): void {
  hostMessages.count++;
  hostMessages.bytes += JSON.stringify({ rpcLog: { level, category, message } }).length;
}

/** Messages the worker would have sent the host: this process's logs, in and outside invocations. */
export const hostMessages = { count: 0, bytes: 0 };
