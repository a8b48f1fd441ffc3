import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { processAuditLog } from '../audit/auditLog';
import { AuditLineTemplate } from '../audit/auditLine';
import type { AuditEntry, AuditOrigin, AuditRecord } from '../audit/auditRecord';
import { auditOrigin, buildAuditRecord } from '../audit/auditRecord';
import { auditSink } from '../audit/auditTrail';
import type { Caller } from '../callers/accessPolicy';
import type { Runtime } from '../runtime';
import { getRuntime } from '../runtime';
import type { MemoryHit } from '../secrets/secretResolver';
import type { VaultSecret } from '../secrets/vaultGateway';
import { problemAnswer, trackRequest, withBaseHeaders } from './httpPipeline';
import { secretBody, secretRefOf, secretResponse } from './secretResponses';

/** A cache hit's answer, made once per cached value and validity, kept with the value's cache entry (and dropped with it). */
export interface PrebuiltAnswer {
  /** As the pipeline sends them: its base headers first, then `secretResponse`'s. Frozen. */
  readonly headers: Readonly<Record<string, string>>;
  /** The JSON body (it holds the value: it lives exactly as long as the cache entry that holds the value). */
  readonly body: string;
  /** Audit line templates per name as asked (case may differ from the vault's) and caller. */
  readonly audit: Map<string, Map<Caller, AuditLineTemplate>>;
}

/** Names as asked, and callers per name, whose audit templates one answer keeps; beyond them, a template is made per request. */
const TEMPLATE_NAMES = 16;
const TEMPLATE_CALLERS = 256;

/** A cache hit's headers and body. */
export interface HitAnswer {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * What a synchronous hit path is made of (bench/workerPath.ts composes it with each part swapped
 * for the awaited path's way, to show what each is worth). Each part must do exactly what the
 * awaited path does for the same request.
 */
export interface HitPathParts {
  /** The request's caller when it can be known without waiting (else undefined: the awaited path decides). */
  readonly caller: (runtime: Runtime, request: HttpRequest) => Caller | undefined;
  /** The answer's headers (as sent, the pipeline's base headers first) and body. */
  readonly answer: (hit: MemoryHit) => HitAnswer;
  /** Writes the access's audit record to the log (telemetry off; with it on, the record goes out as an event). */
  readonly audit: (hit: MemoryHit, caller: Caller, name: string, origin: AuditOrigin, started: number) => void;
  /** Records version adoption for the read, as the awaited route does. */
  readonly adopt: (runtime: Runtime, secret: VaultSecret, caller: Caller) => void;
}

/**
 * `GET /api/secrets/{name}` answered synchronously, with no `await`, when it can be answered from
 * this instance's memory exactly as the awaited path (withCaller + SecretResolver.resolve +
 * secretResponse) would answer it: the caller sends an API key that already proved valid (and no
 * Authorization), the value is fresh in the cache, the caller may read it, and its rate holds a
 * request. Then it takes that request from the rate, writes the access's audit record, records
 * version adoption, and answers from the value's prebuilt answer, with the request's telemetry.
 * Anything else (a bearer token, an unknown key, a refusal, a miss, a value past its TTL, a cached
 * "not found", a caller over its rate, a runtime that cannot be built) returns undefined, having
 * charged, recorded and answered nothing: the awaited path answers it. A value outside its validity
 * window (expired, not yet valid) is answered here too, with `X-Secret-Validity`, as there.
 */
export function hitPath(parts: HitPathParts): (request: HttpRequest, context: InvocationContext) => HttpResponseInit | undefined {
  return (request, context) => {
    const started = performance.now();
    let runtime: Runtime;
    try {
      runtime = getRuntime();
    } catch {
      return undefined;
    }
    // Nothing is charged or recorded until the quota takes the request: a failure before that leaves
    // the request to the awaited path, which answers and records it in full.
    let caller: Caller | undefined;
    let ref: ReturnType<typeof secretRefOf>;
    let hit: MemoryHit | undefined;
    let answer: HitAnswer;
    try {
      caller = parts.caller(runtime, request);
      if (caller === undefined) return undefined;
      ref = secretRefOf(request);
      hit = runtime.resolver.hitNow(caller, ref);
      if (hit === undefined) return undefined;
      answer = parts.answer(hit);
    } catch {
      return undefined;
    }
    if (!runtime.quota.tryTake(caller)) return undefined;
    hit.served();
    let response: HttpResponseInit = { status: 200, headers: answer.headers, body: answer.body };
    try {
      const origin = auditOrigin(request.headers, { invocationId: context.invocationId, traceParent: context.traceContext?.traceParent });
      const record = (): AuditRecord =>
        buildAuditRecord(origin, caller, { ...entryOf(hit, ref.name), durationMs: performance.now() - started });
      if (runtime.telemetry.enabled) {
        auditSink(runtime.telemetry)(record());
      } else {
        try {
          parts.audit(hit, caller, ref.name, origin, started);
        } catch {
          // A template that cannot be made (an unusual caller name) costs the fast line, not the record.
          processAuditLog().add(record());
        }
      }
      parts.adopt(runtime, hit.secret, caller);
    } catch (err: unknown) {
      response = withBaseHeaders(problemAnswer(err, request, context, runtime));
    }
    trackRequest(runtime, request, context, started, response);
    return response;
  };
}

/** The caller of an API key the policy already accepted, looked up, not hashed. */
export function knownKeyCaller(runtime: Runtime, request: HttpRequest): Caller | undefined {
  return runtime.authenticator.knownApiKeyCaller(request.headers);
}

/** Version adoption: a Map update in memory (shared/adoption/adoptionTracker.ts). */
export function recordAdoption(runtime: Runtime, secret: VaultSecret, caller: Caller): void {
  runtime.adoption.record(secret.vault, secret.name, caller.name, secret.version);
}

/** The audit line from the value's prebuilt template for this caller and name, filled in for this request. */
export function templateAudit(hit: MemoryHit, caller: Caller, name: string, origin: AuditOrigin, started: number): void {
  const answer = answerOf(hit);
  // The version recorded is the one served, unless the vault gave none (then the one asked for).
  const asked = hit.secret.version === null ? `${name}@${hit.auditVersion}` : name;
  let byCaller = answer.audit.get(asked);
  if (byCaller === undefined) {
    byCaller = new Map();
    if (answer.audit.size < TEMPLATE_NAMES) answer.audit.set(asked, byCaller);
  }
  let template = byCaller.get(caller);
  if (template === undefined) {
    template = new AuditLineTemplate(caller, entryOf(hit, name));
    if (byCaller.size < TEMPLATE_CALLERS) byCaller.set(caller, template);
  }
  processAuditLog().addLine(template.line(origin, performance.now() - started));
}

/** The awaited path's way of each part (for bench/workerPath.ts): hashing is left to the bench. */
export const awaitedParts: Pick<HitPathParts, 'answer' | 'audit'> = {
  /** The answer made for this request, as `secretResponse` and the pipeline make it. */
  answer: (hit) => {
    const resolution = { secret: hit.secret, cache: 'hit' as const, validity: hit.validity };
    const { headers, body } = withBaseHeaders(secretResponse(resolution, secretBody(resolution)));
    return { headers: headers as Record<string, string>, body: body as string };
  },
  /** The record built and serialised for this request, as the request's audit trail does. */
  audit: (hit, caller, name, origin, started) => {
    processAuditLog().add(buildAuditRecord(origin, caller, { ...entryOf(hit, name), durationMs: performance.now() - started }));
  },
};

/** The synchronous hit path as the app runs it: known keys, prebuilt answers, audit templates. */
export const answerFromMemory = hitPath({ caller: knownKeyCaller, answer: answerOf, audit: templateAudit, adopt: recordAdoption });

/** The hit's prebuilt answer, made on the first request for its value and validity. */
export function answerOf(hit: MemoryHit): PrebuiltAnswer {
  let answer = hit.memo.get(hit.validity) as PrebuiltAnswer | undefined;
  if (answer === undefined) {
    const { headers, body } = awaitedParts.answer(hit);
    answer = { headers: Object.freeze({ ...headers }), body, audit: new Map() };
    hit.memo.set(hit.validity, answer);
  }
  return answer;
}

/** What SecretResolver.resolve records for this hit, but its duration. */
function entryOf(hit: MemoryHit, name: string): Omit<AuditEntry, 'durationMs'> {
  return {
    operation: 'resolve',
    vault: hit.vault,
    secret: name,
    version: hit.auditVersion,
    status: 200,
    code: 'OK',
    cache: 'hit',
    validity: hit.validity,
  };
}
