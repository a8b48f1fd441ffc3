import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpResponse, InvocationContext } from '@azure/functions';
import type { FunctionTrigger, HttpResponseInit, LogLevel } from '@azure/functions';
import type { FunctionDefinition } from '../functions/index';
import { HostBodyTooLargeError, MAX_HOST_BODY_BYTES, createLocalHttpRequest, readToEnd, streamRequestBody } from './localHttpRequest';
import { parseSchedule } from '../shared/health/ncrontab';
import { processAuditLog } from '../shared/audit/auditLog';
import { methodNotAllowedResponse } from '../shared/http/problem';
import { serveAdminInvoke, serveEventGridWebhook } from './triggerEndpoints';

/**
 * How long a connection whose request body was not read to its end stays open, unread, after the
 * answer went out: long enough for the caller to read the answer before the reset that closing a
 * socket with unread bytes sends (see closeIfBodyUnread), short enough that it cannot hold it.
 */
const UNREAD_BODY_LINGER_MS = 2_000;
/** The longest delay setTimeout accepts. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

interface Route {
  readonly definition: Extract<FunctionDefinition, { kind: 'http' }>;
  /** What `context.options.trigger` shows, as the Functions host fills it from the registration. */
  readonly trigger: FunctionTrigger;
  readonly methods: readonly string[];
  readonly pattern: RegExp;
  readonly paramNames: readonly string[];
}

export interface LocalHostOptions {
  readonly definitions: readonly FunctionDefinition[];
  readonly port: number;
  readonly host?: string;
  /** Where the host and function logs go (stdout by default). */
  readonly write?: (line: string) => void;
  /** Least severe level written, as host.json's `logging.logLevel.default` (default `Information`). */
  readonly logLevel?: string;
  /** Run timer triggers on their schedule (default true); they can always be run on demand. */
  readonly runTimers?: boolean;
}

/** The `Timer` object a timer trigger receives. */
function timerInput(isPastDue: boolean): { isPastDue: boolean; schedule: { adjustForDST: boolean } } {
  return { isPastDue, schedule: { adjustForDST: false } };
}

const LEVELS = ['trace', 'debug', 'information', 'warning', 'error', 'critical'];

/** The index of a host.json log level name (`Information`, `Warning`, ...; `None` silences). */
function levelIndex(name: string | undefined): number {
  if (name?.toLowerCase() === 'none') return LEVELS.length;
  const i = LEVELS.indexOf((name ?? 'information').toLowerCase());
  return i < 0 ? 2 : i;
}

export interface LocalHost {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A small stand-in for the Azure Functions host: serves the app's function definitions with
 * `func start`'s routes (HTTP under /api) using the real `HttpRequest` / `InvocationContext`
 * classes of `@azure/functions`. It runs the same handlers the v4 registrations do.
 */
export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const writeAny = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const threshold = levelIndex(options.logLevel);
  const writeAt = (level: string, line: string): void => {
    if (levelIndex(level) >= threshold) writeAny(line);
  };
  // Lines are only built when they will be written: under load the host logs warnings only.
  const logsInformation = levelIndex('information') >= threshold;
  const logInformation = (line: string): void => writeAt('information', line);
  /**
   * In Azure the app's audit records reach the host log in batches (shared/audit/auditLog.ts), one
   * log call per record; here each request's records are written before it is answered, so the
   * log reads in order.
   */
  const flushAuditLog = (functionName: string): void =>
    processAuditLog().flush((line) => {
      if (logsInformation) writeAny(`[${new Date().toISOString()}] ${functionName}: ${line}`);
    });
  const routes = options.definitions.filter((d): d is Extract<FunctionDefinition, { kind: 'http' }> => d.kind === 'http').map(compileRoute);

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      writeAt('error', `[host] request failed: ${err instanceof Error ? err.message : 'error'}`);
      if (!res.headersSent) {
        closeIfBodyUnread(req, res, logInformation);
        res.writeHead(500, { 'Content-Type': 'application/problem+json' });
      }
      res.end(
        JSON.stringify({
          type: 'about:blank',
          title: 'Internal error',
          status: 500,
          code: 'InternalError',
          detail: 'The local host failed',
        }),
      );
    });
  });
  server.keepAliveTimeout = 65_000;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    } catch {
      url = new URL(req.url ?? '/', 'http://localhost');
    }
    if (url.pathname === '/runtime/webhooks/eventgrid' || url.pathname.startsWith('/admin/functions/')) {
      // Not caller-facing: these read their whole (capped) body before the function runs.
      const body = await readWholeBody(req);
      if (body === undefined) return tooLarge(req, res, logInformation);
      if (url.pathname.startsWith('/admin/functions/')) {
        if ((req.method ?? '').toUpperCase() !== 'POST') return notFound(req, res, logInformation);
        return serveAdminInvoke(res, safeDecode(url.pathname.slice('/admin/functions/'.length)), body, options.definitions, invoke);
      }
      return serveEventGridWebhook(req, res, url, body, options.definitions, invoke);
    }
    if (!url.pathname.startsWith('/api/')) return notFound(req, res, logInformation);
    const subpath = url.pathname.slice('/api/'.length);
    const matches = routes
      .map((route) => ({ route, match: route.pattern.exec(subpath) }))
      .filter((m): m is { route: Route; match: RegExpExecArray } => m.match !== null);
    if (matches.length === 0) return notFound(req, res, logInformation);
    const method = (req.method ?? 'GET').toUpperCase();
    const hit = matches.find((m) => m.route.methods.includes(method));
    if (!hit) {
      // A literal segment takes precedence over a parameter: `secrets/resolve` (POST) is not also
      // `secrets/{name}`, so its Allow names the batch route's methods only.
      const fewestParams = Math.min(...matches.map((m) => m.route.paramNames.length));
      const allow = [...new Set(matches.filter((m) => m.route.paramNames.length === fewestParams).flatMap((m) => m.route.methods))];
      const { status, headers: outHeaders, payload } = await toWire(methodNotAllowedResponse(method, allow));
      closeIfBodyUnread(req, res, logInformation);
      res.writeHead(status, outHeaders);
      res.end(payload);
      return;
    }
    const params: Record<string, string> = {};
    hit.route.paramNames.forEach((name, i) => {
      const raw = hit.match[i + 1];
      if (raw !== undefined) params[name] = safeDecode(raw);
    });
    const headers: Record<string, string> = {};
    for (const key in req.headers) {
      const value = req.headers[key];
      if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(', ') : value;
    }
    // As Azure's front end does: append the address the connection came from, after any hops the
    // client sent itself (so the last hop is the one the host vouches for).
    const peer = req.socket.remoteAddress?.replace(/^::ffff:/, '');
    if (peer) headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']}, ${peer}` : peer;
    // The body streams from the socket as the handler reads it, as with the Functions host's HTTP
    // streaming; the handler's own limit decides how much is read. GET and HEAD have none (as there).
    const body = method !== 'GET' && method !== 'HEAD' && hasBody(req) ? req : undefined;
    const request = createLocalHttpRequest({ method, url: url.toString(), headers, params, body });
    const invocationId = randomUUID();
    const functionName = hit.route.definition.name;
    const context = new InvocationContext({
      invocationId,
      functionName,
      logHandler: logTo(writeAt, threshold, functionName),
      options: { trigger: hit.route.trigger },
    });
    const started = performance.now();
    if (logsInformation)
      writeAny(
        `[${new Date().toISOString()}] Executing 'Functions.${functionName}' (Reason='This function was programmatically called via the host APIs.', Id=${invocationId})`,
      );
    let init: HttpResponseInit;
    try {
      init = (await hit.route.definition.options.handler(request, context)) ?? {};
      flushAuditLog(functionName);
    } catch (err: unknown) {
      flushAuditLog(functionName);
      writeAt(
        'error',
        `[${new Date().toISOString()}] Executed 'Functions.${functionName}' (Failed, Id=${invocationId}, Duration=${Math.round(performance.now() - started)}ms)`,
      );
      throw err;
    }
    const { status, headers: outHeaders, payload } = await toWire(init);
    closeIfBodyUnread(req, res, logInformation);
    res.writeHead(status, outHeaders);
    res.end(payload);
    if (logsInformation)
      writeAny(
        `[${new Date().toISOString()}] Executed 'Functions.${functionName}' (Succeeded, Id=${invocationId}, Duration=${Math.round(performance.now() - started)}ms)`,
      );
  }

  /** Runs a non-HTTP function once, logging like the Functions host. */
  async function invoke(definition: Exclude<FunctionDefinition, { kind: 'http' }>, input: unknown, reason: string): Promise<void> {
    const invocationId = randomUUID();
    const context = new InvocationContext({
      invocationId,
      functionName: definition.name,
      logHandler: logTo(writeAt, threshold, definition.name),
      options: { trigger: { type: `${definition.kind}Trigger`, name: `${definition.kind}Trigger` } },
    });
    const started = performance.now();
    if (logsInformation)
      writeAny(`[${new Date().toISOString()}] Executing 'Functions.${definition.name}' (Reason='${reason}', Id=${invocationId})`);
    try {
      // The definitions' handlers take their trigger's input; the host hands each its own kind.
      const handler = definition.options.handler as (input: unknown, context: InvocationContext) => unknown;
      await handler(definition.kind === 'timer' ? (input ?? timerInput(false)) : input, context);
      if (logsInformation)
        writeAny(
          `[${new Date().toISOString()}] Executed 'Functions.${definition.name}' (Succeeded, Id=${invocationId}, Duration=${Math.round(performance.now() - started)}ms)`,
        );
    } catch (err: unknown) {
      writeAt(
        'error',
        `[${new Date().toISOString()}] Executed 'Functions.${definition.name}' (Failed, Id=${invocationId}, Duration=${Math.round(performance.now() - started)}ms)`,
      );
      throw err;
    }
  }

  // Listening first: a host that cannot take its port runs and logs nothing.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });

  // Timer triggers run on their schedule, like the host's timer extension (UTC, one at a time).
  const timers = new Map<string, NodeJS.Timeout>();
  let closed = false;
  if (options.runTimers !== false) {
    for (const definition of options.definitions) {
      if (definition.kind !== 'timer') continue;
      const schedule = parseSchedule(definition.options.schedule);
      const arm = (): void => {
        if (closed) return;
        const due = schedule.next(new Date());
        const delay = Math.max(0, due.getTime() - Date.now());
        // setTimeout holds at most ~24.8 days; a later occurrence is re-armed when that passes.
        const timer =
          delay > MAX_TIMER_DELAY_MS
            ? setTimeout(arm, MAX_TIMER_DELAY_MS)
            : setTimeout(() => {
                const late = Date.now() - due.getTime() > 60_000;
                invoke(definition, timerInput(late), `Timer fired at ${new Date().toISOString()}`)
                  .catch(() => undefined)
                  .finally(arm);
              }, delay);
        timer.unref();
        timers.set(definition.name, timer);
      };
      arm();
      if (definition.options.runOnStartup) void invoke(definition, timerInput(false), 'Timer fired on start-up').catch(() => undefined);
      writeAt(
        'information',
        `[host] timer ${definition.name}: schedule ${definition.options.schedule}, next run ${schedule.next(new Date()).toISOString()}`,
      );
    }
  }

  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://localhost:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        timers.forEach((t) => clearTimeout(t));
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function compileRoute(definition: Extract<FunctionDefinition, { kind: 'http' }>): Route {
  const route = definition.options.route ?? definition.name;
  const paramNames: string[] = [];
  const pattern = route
    .split('/')
    .map((segment) => {
      const param = /^\{([A-Za-z0-9_]+)(?::[^}?]+)?(\?)?\}$/.exec(segment);
      if (param?.[1]) {
        paramNames.push(param[1]);
        return param[2] ? '([^/]*)' : '([^/]+)';
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  const methods = (definition.options.methods ?? ['GET', 'POST']).map((m) => m.toUpperCase());
  return {
    definition,
    trigger: { type: 'httpTrigger', name: 'httpTrigger', route, methods, authLevel: definition.options.authLevel ?? 'anonymous' },
    methods,
    pattern: new RegExp(`^${pattern}/?$`, 'i'),
    paramNames,
  };
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Whether a request has a body to read (a length that is not 0, or chunks). */
function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The whole body, or undefined past MAX_HOST_BODY_BYTES (then the rest is never read). */
async function readWholeBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  if (!hasBody(req)) return EMPTY;
  try {
    return await readToEnd(streamRequestBody(req, MAX_HOST_BODY_BYTES));
  } catch (err: unknown) {
    if (err instanceof HostBodyTooLargeError) return undefined;
    throw err;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * When the answer goes out before the request's body has arrived to its end (the handler answered
 * without reading it, or stopped reading past its limit), the connection cannot carry another
 * request, and a caller still sending (a large body, a chunked body never finished) must not hold
 * it: the answer says `Connection: close`, and the rest of the body is never read, so memory stays
 * bounded whatever the caller sends.
 *
 * Node ends and destroys a `Connection: close` socket as soon as the answer is written
 * (`socket.destroySoon`). Closing a socket with unread bytes sends a TCP reset, and a caller still
 * writing its body can meet that reset before it has read the answer, and then sees only the reset.
 * So here the socket is ended at once (the answer, then FIN) and destroyed UNREAD_BODY_LINGER_MS
 * later, unread in between.
 */
function closeIfBodyUnread(req: http.IncomingMessage, res: http.ServerResponse, log: (line: string) => void): void {
  if (req.complete) return;
  res.setHeader('Connection', 'close');
  const socket = req.socket;
  const what = `${req.method ?? ''} ${req.url ?? ''}`;
  socket.destroySoon = () => {
    socket.end();
    setTimeout(() => socket.destroy(), UNREAD_BODY_LINGER_MS).unref();
  };
  // Once the answer is written, Node reads the body of a request nobody read from off the wire,
  // discarding it ("if the user never called req.read()"). Reading once here, what is buffered and
  // at most one more chunk, stops that: the rest is never read.
  req.read();
  socket.once('close', () =>
    log(`[host] closed the connection of ${what} without reading the rest of its body (${socket.bytesRead} bytes read from it)`),
  );
}

/**
 * What goes on the wire for a handler's answer. A plain string or bytes body with plain headers
 * is written as it is; anything else (jsonBody, streams, cookies, Headers objects) goes through
 * the library's `HttpResponse`, so its rules apply.
 */
async function toWire(init: HttpResponseInit): Promise<{ status: number; headers: Record<string, string>; payload: string | Buffer }> {
  const plainHeaders =
    init.headers === undefined || (typeof init.headers === 'object' && !(init.headers instanceof Headers) && !Array.isArray(init.headers));
  const body = init.body;
  if (
    plainHeaders &&
    (body === undefined || typeof body === 'string' || body instanceof Uint8Array) &&
    init.jsonBody === undefined &&
    init.cookies === undefined
  ) {
    // A string stays a string: Node then sends headers and body in one write instead of a writev.
    const payload = body === undefined ? '' : typeof body === 'string' ? body : Buffer.from(body);
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries((init.headers ?? {}) as Record<string, string>)) headers[key.toLowerCase()] = value;
    const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    if (length > 0 && headers['content-type'] === undefined) headers['content-type'] = 'text/plain;charset=UTF-8';
    headers['content-length'] = String(length);
    return { status: init.status ?? 200, headers, payload };
  }
  const response = new HttpResponse(init);
  const payload = Buffer.from(await response.arrayBuffer());
  const headers: Record<string, string> = {};
  response.headers.forEach((value, key) => (headers[key] = value));
  headers['content-length'] = String(payload.length);
  return { status: response.status, headers, payload };
}

function tooLarge(req: http.IncomingMessage, res: http.ServerResponse, log: (line: string) => void): void {
  closeIfBodyUnread(req, res, log);
  res.writeHead(413, { 'Content-Type': 'application/problem+json' });
  res.end(
    JSON.stringify({
      type: 'about:blank',
      title: 'Payload too large',
      status: 413,
      code: 'InvalidRequest',
      detail: `The body is larger than ${MAX_HOST_BODY_BYTES} bytes`,
    }),
  );
}

function notFound(req: http.IncomingMessage, res: http.ServerResponse, log: (line: string) => void): void {
  closeIfBodyUnread(req, res, log);
  res.writeHead(404, { 'Content-Type': 'application/problem+json' });
  res.end(
    JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404, code: 'NotFound', detail: 'No function serves this route' }),
  );
}

/** Formats `context.log` calls the way `func start` shows them. */
function logTo(
  write: (level: string, line: string) => void,
  threshold: number,
  functionName: string,
): (level: LogLevel, ...args: unknown[]) => void {
  return (level, ...args) => {
    if (levelIndex(level) < threshold) return;
    const text = args
      .map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : typeof a === 'string' ? a : JSON.stringify(a)))
      .join(' ');
    write(level, `[${new Date().toISOString()}] ${level === 'information' ? '' : `${level}: `}${functionName}: ${text}`);
  };
}
