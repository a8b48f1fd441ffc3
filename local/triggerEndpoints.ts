import type http from 'node:http';
import type { FunctionDefinition } from '../functions/index';

type NonHttp = Exclude<FunctionDefinition, { kind: 'http' }>;

/** Runs one non-HTTP function with one input, as the host would; rejects when the function fails. */
export type Invoke = (definition: NonHttp, input: unknown, reason: string) => Promise<void>;

/**
 * `/runtime/webhooks/eventgrid?functionName=X`, as the Functions host serves Event Grid triggers:
 * the subscription validation handshake (`SubscriptionValidation` → `validationResponse`), the
 * CloudEvents abuse-protection handshake (OPTIONS + `WebHook-Request-Origin`), and deliveries in the
 * Event Grid schema (an array) or CloudEvents 1.0 (one event, or a batch). Each event is one
 * invocation; any failed invocation answers 500 so Event Grid retries.
 */
export async function serveEventGridWebhook(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  body: Buffer,
  definitions: readonly FunctionDefinition[],
  invoke: Invoke,
): Promise<void> {
  const name = url.searchParams.get('functionName') ?? '';
  const definition = definitions.find(
    (d): d is Extract<NonHttp, { kind: 'eventGrid' }> => d.kind === 'eventGrid' && d.name.toLowerCase() === name.toLowerCase(),
  );
  if (!definition) return problem(res, 404, 'NotFound', `No Event Grid function named "${name}"`);

  const method = (req.method ?? 'GET').toUpperCase();
  if (method === 'OPTIONS') {
    const origin = req.headers['webhook-request-origin'];
    const headers: Record<string, string> = { 'WebHook-Allowed-Rate': '*' };
    if (typeof origin === 'string') headers['WebHook-Allowed-Origin'] = origin;
    res.writeHead(200, headers);
    res.end();
    return;
  }
  if (method !== 'POST') return problem(res, 405, 'MethodNotAllowed', 'Event Grid deliveries are POSTed');

  let payload: unknown;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    return problem(res, 400, 'InvalidRequest', 'The body is not valid JSON');
  }
  const contentType = String(req.headers['content-type'] ?? '').toLowerCase();
  const cloudEvents = contentType.startsWith('application/cloudevents');
  const events = Array.isArray(payload) ? payload : [payload];
  if (events.length === 0) return problem(res, 400, 'InvalidRequest', 'No events in the body');
  for (const [i, event] of events.entries()) {
    const missing =
      cloudEvents || isCloudEvent(event)
        ? missingFields(event, ['specversion', 'id', 'source', 'type'])
        : missingFields(event, ['id', 'eventType', 'subject', 'eventTime', 'data']);
    if (missing) return problem(res, 400, 'InvalidRequest', `Event ${i} is not an Event Grid or CloudEvents 1.0 event: ${missing}`);
  }

  if (String(req.headers['aeg-event-type'] ?? '').toLowerCase() === 'subscriptionvalidation') {
    const data = (events[0] as { data?: { validationCode?: unknown } }).data;
    if (typeof data?.validationCode !== 'string') return problem(res, 400, 'InvalidRequest', 'No validationCode in the validation event');
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ validationResponse: data.validationCode }));
    return;
  }

  const results = await Promise.allSettled(
    events.map((event) => invoke(definition, event, `EventGrid trigger fired at ${new Date().toISOString()}`)),
  );
  const failed = results.filter((r) => r.status === 'rejected').length;
  if (failed > 0) return problem(res, 500, 'InvocationFailed', `${failed} of ${events.length} event(s) failed; Event Grid will retry`);
  res.writeHead(200);
  res.end();
}

/**
 * `POST /admin/functions/{name}` with `{"input": "..."}`: runs a non-HTTP function on demand, as
 * `func start` does. Answers 202 when the function ran, 500 when it failed.
 */
export async function serveAdminInvoke(
  res: http.ServerResponse,
  name: string,
  body: Buffer,
  definitions: readonly FunctionDefinition[],
  invoke: Invoke,
): Promise<void> {
  const definition = definitions.find((d): d is NonHttp => d.kind !== 'http' && d.name.toLowerCase() === name.toLowerCase());
  if (!definition) return problem(res, 404, 'NotFound', `No non-HTTP function named "${name}"`);
  let input: unknown = null;
  if (body.length > 0) {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { input?: unknown };
      input = typeof parsed.input === 'string' && parsed.input.length > 0 ? (JSON.parse(parsed.input) as unknown) : (parsed.input ?? null);
    } catch {
      return problem(res, 400, 'InvalidRequest', 'The body must be {"input": "<JSON text>"}');
    }
  }
  try {
    await invoke(definition, input, 'This function was programmatically called via the host APIs.');
  } catch {
    return problem(res, 500, 'InvocationFailed', `Function "${definition.name}" failed; see the host log`);
  }
  res.writeHead(202);
  res.end();
}

function isCloudEvent(event: unknown): boolean {
  return typeof event === 'object' && event !== null && 'specversion' in event;
}

function missingFields(event: unknown, fields: string[]): string | undefined {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return 'not an object';
  const record = event as Record<string, unknown>;
  const missing = fields.filter((f) => record[f] === undefined || record[f] === null);
  return missing.length > 0 ? `missing ${missing.join(', ')}` : undefined;
}

function problem(res: http.ServerResponse, status: number, code: string, detail: string): void {
  res.writeHead(status, { 'Content-Type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title: http_status(status), status, code, detail }));
}

function http_status(status: number): string {
  return { 400: 'Bad request', 404: 'Not found', 405: 'Method not allowed', 500: 'Invocation failed' }[status] ?? 'Error';
}
