/**
 * The hot path as the Node.js worker runs it, in its own process: `node dist/bench/workerPath.js`
 * with the app's settings in the environment (bench/run.ts starts it). `@azure/functions-core`
 * resolves to bench/functionsCoreStandIn.ts in this process only, so importing the app
 * (dist/functions/index.js) lands every `app.http` registration there. Each invocation is then
 * built and run the way the worker does it: an RpcInvocationRequest-like `inputData` carrying an
 * RpcHttp (GET /api/secrets/bench-secret with x-api-key), the programming model's invocation model
 * for it, `getArguments`, `invokeFunction`, `getResponse`. The baseline is a trivial handler on the
 * same route answering the same status, headers and body through the same path.
 *
 * Version adoption's cost: the same resolve without its one tracking call (`untrackedBench`: the
 * synchronous hit path of functions/resolveSecret.ts composed without `recordAdoption`), timed in
 * rounds interleaved with the real one; the cost is the median of the per-round ratios.
 *
 * What each piece of the cache hit is worth: the same route with one piece at a time done the
 * awaited path's way (shared/http/hitPath.ts composed with other parts): the API key hashed and
 * compared on every request (as the policy does for a key it does not know: one SHA-256, one
 * constant-time compare); the answer's headers and body made per request; the audit record built
 * and serialised per request; and no synchronous path at all (withCaller + resolve, as before).
 *
 * Logs the worker would send to the host (`context.log` inside an invocation, `log` outside) are
 * serialised as JSON by the stand-in; the worker encodes them with protobuf onto its gRPC stream,
 * which costs more. Console output (where the batched audit log writes) goes to this process's stdout.
 *
 * Writes its result as JSON to the file named by BENCH_RESULT_FILE.
 */
import { hash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { HttpHandler } from '@azure/functions';
import type { HitPathParts } from '../shared/http/hitPath';
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const STAND_IN = path.join(__dirname, 'functionsCoreStandIn.js');
registerHooks({
  resolve: (specifier, context, next) =>
    specifier === '@azure/functions-core' ? { url: pathToFileURL(STAND_IN).href, shortCircuit: true } : next(specifier, context),
});

/* eslint-disable @typescript-eslint/no-require-imports -- loaded after the resolve hook is in place */
const core = require('@azure/functions-core') as typeof import('./functionsCoreStandIn');
const { app } = require('@azure/functions') as typeof import('@azure/functions');
require('../functions/index');
const { withCaller } = require('../shared/http/httpPipeline') as typeof import('../shared/http/httpPipeline');
const { answerOf, awaitedParts, hitPath, knownKeyCaller, recordAdoption, templateAudit } =
  require('../shared/http/hitPath') as typeof import('../shared/http/hitPath');
const { AdoptionTracker } = require('../shared/adoption/adoptionTracker') as typeof import('../shared/adoption/adoptionTracker');
const { secretBody, secretRefOf, secretResponse } =
  require('../shared/http/secretResponses') as typeof import('../shared/http/secretResponses');
/* eslint-enable @typescript-eslint/no-require-imports */

/** The API key the parent put in ACCESS_POLICY. */
const KEY = process.env.BENCH_API_KEY ?? 'bench-key';
const ROUNDS = Number(process.env.BENCH_WORKER_ROUNDS ?? 15);
const PER_ROUND = Number(process.env.BENCH_WORKER_PER_ROUND ?? 2_000);
const WARM_UP = 3_000;

interface RpcHttpResponse {
  statusCode?: string;
  headers?: Record<string, string>;
  body?: { string?: string; bytes?: Uint8Array };
}

export interface WorkerPathResult {
  brokerMicros: number;
  trivialMicros: number;
  /** The same resolve without adoption tracking. */
  untrackedMicros: number;
  /** The same variant with the tracking call: µs per invocation. */
  trackedMicros: number;
  /** `AdoptionTracker.record` alone, warm, for an existing entry: nanoseconds per call. */
  recordNanos: number;
  /** Median over rounds of broker / untracked time per invocation: adoption tracking's cost is this minus 1. */
  trackedRatio: number;
  /** trivial / broker per-invocation time: the broker's throughput as a share of the trivial handler's. */
  ratio: number;
  /** The same route with one piece of the cache hit done the awaited path's way: µs per invocation (median of rounds). */
  piecesOff: { piece: string; micros: number }[];
  invocations: number;
  /** Log messages an invocation of each sent the host (context.log). */
  brokerLogsPerInvocation: number;
  trivialLogsPerInvocation: number;
  /** What the broker answered (status, cache header), to show it was a cache hit. */
  answered: string;
}

/** Per invocation, the log messages the stand-in counted for the host. */
let invocationLogs = 0;

function invocationOf(functionName: string, coreLog: (level: string, category: string, message: string) => void) {
  const entry = core.registered.get(functionName);
  if (!entry) throw new Error(`${functionName} was not registered`);
  const trigger = Object.entries(entry.metadata.bindings).find(([, b]) => /trigger$/i.test(b.type));
  if (!trigger) throw new Error(`${functionName} has no trigger`);
  const [triggerName] = trigger;
  const headers: Record<string, string> = {
    host: 'broker.azurewebsites.net',
    'x-api-key': KEY,
    'x-forwarded-for': '203.0.113.9:50123',
    'x-ms-client-request-id': 'bench-request',
    'user-agent': 'bench',
    accept: 'application/json',
  };
  return (): { coreCtx: import('./functionsCoreStandIn').CoreInvocationContext; callback: (...args: unknown[]) => unknown } => {
    const invocationId = randomUUID();
    const request = {
      invocationId,
      functionId: functionName,
      inputData: [
        {
          name: triggerName,
          data: {
            http: {
              method: 'GET',
              url: 'https://broker.azurewebsites.net/api/secrets/bench-secret',
              headers,
              nullableHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, { value: v }])),
              query: {},
              nullableQuery: {},
              params: { name: 'bench-secret' },
              nullableParams: { name: { value: 'bench-secret' } },
              identities: [],
            },
          },
        },
      ],
      triggerMetadata: {},
      traceContext: { traceParent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`, traceState: '', attributes: {} },
    };
    return {
      coreCtx: { invocationId, request, metadata: entry.metadata, state: undefined, log: coreLog },
      callback: entry.callback,
    };
  };
}

/** One invocation, as the worker's invocation handler runs it (no hooks are registered by the app). */
async function invoke(build: ReturnType<typeof invocationOf>): Promise<RpcHttpResponse> {
  const { coreCtx, callback } = build();
  const model = core.getProgrammingModel().getInvocationModel(coreCtx);
  const { context, inputs } = await model.getArguments();
  const result = await model.invokeFunction(context, inputs, callback);
  const response = (await model.getResponse(context, result)) as { returnValue?: { http?: RpcHttpResponse } };
  return response.returnValue?.http ?? {};
}

async function timeRound(build: ReturnType<typeof invocationOf>, n: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i++) await invoke(build);
  return ((performance.now() - started) * 1000) / n;
}

/** The tracking call alone, on a tracker of its own (never flushed), as a resolve makes it: median of 15 runs of 200,000. */
function timeRecord(): number {
  const tracker = new AdoptionTracker({
    store: () => ({ write: () => Promise.resolve(), read: () => Promise.resolve([]), readAll: () => Promise.resolve([]) }),
    log: () => undefined,
    flushIntervalMs: 3_600_000,
  });
  const version = 'a'.repeat(32);
  const runs: number[] = [];
  for (let run = 0; run < 15; run++) {
    const started = performance.now();
    for (let i = 0; i < 200_000; i++) tracker.record('default', 'bench-secret', 'bench', version);
    runs.push(((performance.now() - started) * 1e6) / 200_000);
  }
  tracker.dispose();
  return median(runs);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const coreLog = (level: string, category: string, message: string): void => {
    invocationLogs++;
    core.log(level, category, message);
  };
  const broker = invocationOf('resolveSecret', coreLog);
  // The first invocation reads the vault; every later one is a cache hit.
  const first = await invoke(broker);
  if (first.statusCode !== '200') throw new Error(`resolveSecret answered ${String(first.statusCode)}: ${first.body?.string ?? ''}`);
  const hit = await invoke(broker);
  const headers = { ...(hit.headers ?? {}) };
  const body = hit.body?.string ?? (hit.body?.bytes ? Buffer.from(hit.body.bytes).toString('utf8') : '');
  app.http('trivialBench', {
    methods: ['GET'],
    route: 'secrets/{name}',
    authLevel: 'anonymous',
    handler: () => Promise.resolve({ status: 200, headers, body }),
  });
  const trivial = invocationOf('trivialBench', coreLog);
  const awaited = withCaller({ operation: 'resolve' }, async (request, _context, runtime, { caller, audit }) => {
    const resolution = await runtime.resolver.resolve(caller, secretRefOf(request), audit);
    const { secret } = resolution;
    runtime.adoption.record(secret.vault, secret.name, caller.name, secret.version);
    return secretResponse(resolution, secretBody(resolution));
  });
  const variant = (name: string, handler: HttpHandler) => {
    app.http(name, { methods: ['GET'], route: 'secrets/{name}', authLevel: 'anonymous', handler });
    return invocationOf(name, coreLog);
  };
  const appParts: HitPathParts = { caller: knownKeyCaller, answer: answerOf, audit: templateAudit, adopt: recordAdoption };
  const composed = (parts: Partial<HitPathParts>): HttpHandler => {
    const sync = hitPath({ ...appParts, ...parts });
    return (request, context) => sync(request, context) ?? awaited(request, context);
  };
  // Adoption's cost: two variants built alike, differing only in the tracking call.
  const tracked = variant('trackedBench', composed({}));
  const untracked = variant('untrackedBench', composed({ adopt: () => undefined }));
  // The policy's own work for a key it does not remember: one SHA-256 and one constant-time compare per configured hash.
  const expected = hash('sha256', KEY, 'buffer');
  const piecesOff = [
    {
      piece: 'API key hashed per request',
      build: variant(
        'hashedKeyBench',
        composed({
          caller: (runtime, request) => {
            const key = request.headers.get('x-api-key');
            if (!key || request.headers.get('authorization') !== null) return undefined;
            return timingSafeEqual(expected, hash('sha256', key, 'buffer')) ? runtime.policy.knownApiKey(key) : undefined;
          },
        }),
      ),
    },
    { piece: 'answer made per request', build: variant('answerPerRequestBench', composed({ answer: awaitedParts.answer })) },
    {
      piece: 'audit record built and serialised per request',
      build: variant('recordPerRequestBench', composed({ audit: awaitedParts.audit })),
    },
    { piece: 'no synchronous hit path (awaited pipeline)', build: variant('awaitedBench', awaited) },
  ].map((p) => ({ ...p, rounds: [] as number[] }));
  for (const p of piecesOff) {
    const answer = await invoke(p.build);
    if (answer.statusCode !== '200' || (answer.headers?.['X-Cache'] ?? answer.headers?.['x-cache']) !== 'HIT')
      throw new Error(`${p.piece}: answered ${String(answer.statusCode)}`);
  }
  const trackedAnswer = await invoke(tracked);
  if (trackedAnswer.statusCode !== '200') throw new Error(`tracked resolve answered ${String(trackedAnswer.statusCode)}`);
  const untrackedAnswer = await invoke(untracked);
  if (untrackedAnswer.statusCode !== '200') throw new Error(`untracked resolve answered ${String(untrackedAnswer.statusCode)}`);
  const trivialAnswer = await invoke(trivial);
  if (trivialAnswer.body?.string !== body && Buffer.from(trivialAnswer.body?.bytes ?? []).toString('utf8') !== body) {
    throw new Error('the trivial handler does not answer the same bytes');
  }

  await timeRound(broker, WARM_UP);
  await timeRound(trivial, WARM_UP);
  await timeRound(untracked, WARM_UP);
  await timeRound(tracked, WARM_UP);
  for (const p of piecesOff) await timeRound(p.build, WARM_UP);
  const brokerRounds: number[] = [];
  const trivialRounds: number[] = [];
  const untrackedRounds: number[] = [];
  const trackedRounds: number[] = [];
  const trackedRatios: number[] = [];
  let brokerLogs = 0;
  let trivialLogs = 0;
  for (let round = 0; round < ROUNDS; round++) {
    invocationLogs = 0;
    brokerRounds.push(await timeRound(broker, PER_ROUND));
    brokerLogs += invocationLogs;
    invocationLogs = 0;
    trivialRounds.push(await timeRound(trivial, PER_ROUND));
    trivialLogs += invocationLogs;
    // Tracked and untracked side by side, their order alternating, so drift hits both alike.
    const before = round % 2 === 0;
    const extra = before ? await timeRound(tracked, PER_ROUND) : undefined;
    const without = await timeRound(untracked, PER_ROUND);
    const withTracking = extra ?? (await timeRound(tracked, PER_ROUND));
    untrackedRounds.push(without);
    trackedRounds.push(withTracking);
    trackedRatios.push(withTracking / without);
    for (const p of piecesOff) p.rounds.push(await timeRound(p.build, PER_ROUND));
  }
  const brokerMicros = median(brokerRounds);
  const trivialMicros = median(trivialRounds);
  const result: WorkerPathResult = {
    brokerMicros,
    trivialMicros,
    untrackedMicros: median(untrackedRounds),
    trackedMicros: median(trackedRounds),
    trackedRatio: median(trackedRatios),
    recordNanos: timeRecord(),
    ratio: trivialMicros / brokerMicros,
    piecesOff: piecesOff.map((p) => ({ piece: p.piece, micros: median(p.rounds) })),
    invocations: ROUNDS * PER_ROUND,
    brokerLogsPerInvocation: brokerLogs / (ROUNDS * PER_ROUND),
    trivialLogsPerInvocation: trivialLogs / (ROUNDS * PER_ROUND),
    answered: `${String(hit.statusCode)} X-Cache ${headers['X-Cache'] ?? headers['x-cache'] ?? '?'}`,
  };
  const out = process.env.BENCH_RESULT_FILE;
  if (out) writeFileSync(out, JSON.stringify(result));
  else process.stderr.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`worker-path bench failed: ${err instanceof Error ? (err.stack ?? err.message) : 'error'}\n`);
    process.exit(1);
  },
);
