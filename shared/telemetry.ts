/**
 * The product's telemetry: a small facade over `applicationinsights` v3.
 *
 * Why the v3 `TelemetryClient` shim with `useGlobalProviders: false`, and not `useAzureMonitor`
 * (the distro) or `setup().start()`:
 * - The distro registers global OpenTelemetry providers and auto-instruments http, the Azure SDK,
 *   console/bunyan/winston, uncaught exceptions, performance counters and live metrics. Inside the
 *   Functions host, which already records every invocation as a request and every `context.log`
 *   line as a trace, that double-instruments; and auto-collected spans, logs and exceptions carry
 *   attributes we do not control (URLs with query strings, log lines, error messages).
 * - With `useGlobalProviders: false` the shim builds private tracer/logger/meter providers wired to
 *   the Azure Monitor exporters and instruments nothing: only what this facade tracks is sent, it
 *   never touches the process-wide OpenTelemetry API, and loading it patches no module (verified:
 *   `http.request`, `Module.prototype.require` and diagnostics channels are left alone).
 * - Events, availability results and exceptions go through the shim's log API, which produces
 *   the classic EventData / AvailabilityData / ExceptionData envelopes. Requests and dependencies
 *   become spans; the exporter derives the envelope fields from span attributes, so we set those
 *   attributes ourselves (see `requestAttributes` / `dependencyAttributes`) to keep the name,
 *   URL, result code and target we were given.
 *
 * The SDK (~1,800 modules, about half a second to load) is required on the first track call and
 * only when a connection string is configured, so a cold start without telemetry never loads it.
 * Tracking never throws into the caller; `flush()` never rejects.
 *
 * What is sent is only what callers pass in, after these safeguards: exception messages are
 * replaced by a normalised one (type and safe codes only), URLs lose their query string and user
 * info, and nothing is collected automatically.
 */
import { createRequire } from 'node:module';
import type { TokenCredential } from '@azure/core-auth';
import type { AzureMonitorOpenTelemetryOptions, TelemetryClient } from 'applicationinsights';

/** Custom dimensions of an event; `null` and `undefined` values are left out. */
export type EventProperties = Record<string, string | number | boolean | null | undefined>;

/** A call this app made to something else (e.g. Key Vault). */
export interface DependencyTelemetry {
  /** Operation, ideally a template such as `GET /secrets/{name}` so calls group. */
  name: string;
  /** Host (or logical name) called, e.g. `myvault.vault.azure.net`. */
  target: string;
  /** Dependency type, e.g. `Azure Key Vault` or `HTTP`. */
  type: string;
  /** The URL or command; query strings and user info are removed from URLs. */
  data: string;
  durationMs: number;
  resultCode: string | number;
  success: boolean;
  properties?: Record<string, string>;
}

/** An incoming request this app served. */
export interface RequestTelemetry {
  /** `METHOD /route/{template}`, e.g. `GET /api/secrets/{name}`; sent as the request name verbatim. */
  name: string;
  /** The request URL; the query string and user info are removed. */
  url: string;
  durationMs: number;
  resultCode: string | number;
  success: boolean;
  properties?: Record<string, string>;
}

/** The result of one availability (synthetic) test. */
export interface AvailabilityTelemetry {
  name: string;
  runLocation: string;
  success: boolean;
  durationMs: number;
  /** Short, caller-written reason; never a response body. */
  message?: string;
  properties?: Record<string, string>;
}

/**
 * Where the app's telemetry goes. Every method is fire-and-forget and never throws; values that
 * could be secret (secret values, tokens, bodies) must never be passed in.
 */
export interface Telemetry {
  /** False when no connection string is set: callers may skip building what they would track. */
  readonly enabled: boolean;
  trackEvent(name: string, properties: EventProperties, measurements?: Record<string, number>): void;
  trackDependency(d: DependencyTelemetry): void;
  trackRequest(r: RequestTelemetry): void;
  trackAvailability(a: AvailabilityTelemetry): void;
  /** One value of a metric (e.g. a delivery lag in ms); aggregated by Application Insights. */
  trackMetric(name: string, value: number, properties?: Record<string, string>): void;
  /**
   * Records an exception as its type and a normalised message (`<Type>: message withheld`, plus
   * `code=`/`status=` when the error carries safe ones) and its stack frames: never the original
   * message, which may quote input (e.g. `JSON.parse` errors quote the text they choked on).
   */
  trackException(err: unknown, properties?: Record<string, string>): void;
  /** Sends everything tracked so far; resolves when the ingestion endpoint has answered (or after a timeout). */
  flush(): Promise<void>;
}

/** Knobs that are rarely needed; the defaults suit the Functions host and local runs. */
export interface TelemetryOptions {
  /**
   * Cloud role name (Application Map node). The runtime passes `WEBSITE_SITE_NAME` (the function
   * app's name, as the host reports its own telemetry), else `OTEL_SERVICE_NAME`; default the package name.
   */
  roleName?: string;
  /**
   * Whether the Functions host already records each invocation as a request, in which case
   * `trackRequest` sends nothing (otherwise every request would be counted twice). The runtime
   * sets it when running in Azure (`WEBSITE_SITE_NAME` set, on every plan: Flex Consumption has no
   * `FUNCTIONS_WORKER_RUNTIME` app setting). Default false.
   */
  hostRecordsRequests?: boolean;
  /**
   * Keep unsent telemetry on disk and retry it later (the exporter's offline storage). Off by
   * default: Functions instances are short-lived, and files left in the temp directory would be
   * replayed into whichever endpoint the next process with the same key talks to.
   */
  offlineStorage?: boolean;
  /**
   * Send with this credential's Entra token (scope `https://monitor.azure.com/.default`, as the exporter asks) instead of
   * the connection string alone: required by a component with local authentication off.
   */
  credential?: TokenCredential;
}

/** Longest `flush()` waits; the export keeps going in the background after that. */
const FLUSH_TIMEOUT_MS = 15_000;
const DEFAULT_ROLE_NAME = 'keyvault-secret-broker';
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
const SAFE_TYPE_NAME = /^[A-Za-z_$][\w$.]{0,99}$/;
const SAFE_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

/** Telemetry that does nothing: used when no connection string is configured. */
const NO_TELEMETRY: Telemetry = Object.freeze({
  enabled: false,
  trackEvent() {},
  trackDependency() {},
  trackRequest() {},
  trackAvailability() {},
  trackMetric() {},
  trackException() {},
  flush: () => Promise.resolve(),
});

/**
 * Telemetry to the Application Insights resource named by `connectionString`, or a no-op when it
 * is undefined or blank. Nothing is loaded until the first track call.
 */
export function createTelemetry(connectionString: string | undefined, options: TelemetryOptions = {}): Telemetry {
  const trimmed = connectionString?.trim();
  if (!trimmed) return NO_TELEMETRY;
  return new AppInsightsTelemetry(trimmed, options);
}

class AppInsightsTelemetry implements Telemetry {
  readonly enabled = true;
  /** `undefined` until first use; `null` if the SDK could not be loaded (then everything is a no-op). */
  private client: TelemetryClient | null | undefined;
  private readonly skipRequests: boolean;

  constructor(
    private readonly connectionString: string,
    private readonly options: TelemetryOptions,
  ) {
    this.skipRequests = options.hostRecordsRequests ?? false;
  }

  trackEvent(name: string, properties: EventProperties, measurements?: Record<string, number>): void {
    this.safely((client) => {
      client.trackEvent({ name, properties: eventProperties(properties), measurements: finiteOnly(measurements) });
    });
  }

  trackDependency(d: DependencyTelemetry): void {
    this.safely((client) => {
      client.trackDependency({
        name: d.name,
        target: d.target,
        // Empty on purpose: a non-empty type makes the shim derive attributes (http.url, db.*)
        // that would rename the dependency after the concrete URL and send the query string.
        dependencyTypeName: '',
        duration: durationOf(d.durationMs),
        success: d.success,
        properties: { ...d.properties, ...dependencyAttributes(d) },
      });
    });
  }

  trackRequest(r: RequestTelemetry): void {
    if (this.skipRequests) return;
    this.safely((client) => {
      client.trackRequest({
        name: r.name,
        // No `url` here for the same reason: the shim would set http.url, and the exporter would
        // then name the request after the concrete path instead of the route template.
        duration: durationOf(r.durationMs),
        resultCode: String(r.resultCode),
        success: r.success,
        properties: { ...r.properties, ...requestAttributes(r) },
      });
    });
  }

  trackAvailability(a: AvailabilityTelemetry): void {
    this.safely((client) => {
      client.trackAvailability({
        id: '', // the shim generates one
        name: a.name,
        runLocation: a.runLocation,
        success: a.success,
        duration: durationOf(a.durationMs),
        message: a.message ?? '',
        properties: { ...a.properties },
      });
    });
  }

  trackMetric(name: string, value: number, properties?: Record<string, string>): void {
    if (!Number.isFinite(value)) return;
    this.safely((client) => {
      client.trackMetric({ name, value, properties: { ...properties } });
    });
  }

  trackException(err: unknown, properties?: Record<string, string>): void {
    this.safely((client) => {
      client.trackException({ exception: normaliseError(err), properties: { ...properties } });
    });
  }

  async flush(): Promise<void> {
    // Nothing tracked yet means nothing loaded and nothing to send: do not load the SDK for it.
    const client = this.client;
    if (!client) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.flush(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
          timer.unref();
        }),
      ]);
    } catch {
      // Telemetry must not fail the caller; the exporter already retries what it can.
    } finally {
      clearTimeout(timer);
    }
  }

  private safely(track: (client: TelemetryClient) => void): void {
    try {
      const client = this.load();
      if (client) track(client);
    } catch {
      // Fire-and-forget: a telemetry failure must never surface in a request.
    }
  }

  private load(): TelemetryClient | null {
    if (this.client !== undefined) return this.client;
    try {
      this.client = loadClient(this.connectionString, this.options);
    } catch {
      this.client = null;
    }
    return this.client;
  }
}

/** Loads the SDK and builds an isolated client: private providers, exporters only, no instrumentation. */
function loadClient(connectionString: string, options: TelemetryOptions): TelemetryClient {
  // Loaded here rather than at import, so a cold start without telemetry never pays for it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  const ai = require('applicationinsights') as typeof import('applicationinsights');
  const client = new ai.TelemetryClient(connectionString, { useGlobalProviders: false });
  client.config.enableUseDiskRetryCaching = options.offlineStorage ?? false;
  // Audit records travel as events: nothing this client sends is sampled away.
  client.config.samplingPercentage = 100;
  if (options.credential) client.config.aadTokenCredential = options.credential;
  const resource = roleResource(options.roleName ?? DEFAULT_ROLE_NAME);
  if (resource) client.config.azureMonitorOpenTelemetryOptions = { resource };
  client.initialize();
  return client;
}

type Resource = NonNullable<AzureMonitorOpenTelemetryOptions['resource']>;
interface ResourcesModule {
  defaultResource: () => Resource;
  resourceFromAttributes: (attributes: Record<string, string>) => Resource;
}

/**
 * The resource naming our cloud role. Without it the role is `unknown_service:<node path>` and
 * the Application Map shows our telemetry apart from the host's. `@opentelemetry/resources` is
 * resolved from applicationinsights' own dependencies, so it is the copy the SDK itself uses.
 */
function roleResource(roleName: string): Resource | undefined {
  try {
    const fromSdk = createRequire(require.resolve('applicationinsights'));
    const { defaultResource, resourceFromAttributes } = fromSdk('@opentelemetry/resources') as ResourcesModule;
    return defaultResource().merge(resourceFromAttributes({ 'service.name': roleName }));
  } catch {
    return undefined; // The exporter falls back to a default role name; telemetry still flows.
  }
}

/**
 * Span attributes that make the exporter write the RequestData we were given. The exporter reads
 * the URL and status code only when `http.method` is set, and renames the request after
 * `http.route` or `http.url` when either is set; so the URL goes in as scheme/host/target (which
 * it reassembles into `url`) and the span name stays the request name.
 */
function requestAttributes(r: RequestTelemetry): Record<string, string> {
  const attributes: Record<string, string> = { 'http.method': methodOf(r.name), 'http.status_code': String(r.resultCode) };
  Object.assign(attributes, urlAttributes(r.url));
  return attributes;
}

/**
 * Span attributes for a dependency. The exporter only has two ways to fill RemoteDependencyData
 * from a client span without renaming it: the HTTP shape (type `HTTP`, URL as data, result code)
 * and the database shape (type = `db.system` verbatim, data = statement, but result code always
 * `0`). URL-shaped calls take the HTTP shape and keep a non-HTTP type as the `dependencyType`
 * property; anything else takes the database shape and keeps the result code as `resultCode`.
 */
function dependencyAttributes(d: DependencyTelemetry): Record<string, string> {
  const url = urlAttributes(d.data);
  if (url) {
    return {
      ...(d.type && d.type.toUpperCase() !== 'HTTP' ? { dependencyType: d.type } : {}),
      'http.method': methodOf(d.name),
      'http.status_code': String(d.resultCode),
      ...url,
    };
  }
  return { resultCode: String(d.resultCode), 'db.system': d.type, 'db.statement': d.data };
}

/** `http.scheme`/`http.host`/`http.target` for an absolute http(s) URL, without query, fragment or user info. */
function urlAttributes(raw: string): Record<string, string> | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return { 'http.scheme': url.protocol.slice(0, -1), 'http.host': url.host, 'http.target': url.pathname };
}

/** The HTTP method a `METHOD /route` name starts with; `_OTHER` (the OTel convention) otherwise. */
function methodOf(name: string): string {
  const first = name.trim().split(/\s+/, 1)[0]?.toUpperCase() ?? '';
  return HTTP_METHODS.has(first) ? first : '_OTHER';
}

function eventProperties(properties: EventProperties): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(properties ?? {})) {
    if (value !== null && value !== undefined) out[key] = String(value);
  }
  return out;
}

function finiteOnly(measurements: Record<string, number> | undefined): Record<string, number> | undefined {
  if (!measurements) return undefined;
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(measurements)) {
    if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
  }
  return out;
}

function durationOf(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/**
 * A stand-in Error carrying only what is safe to send: the type name, a fixed message with the
 * error's `code` and HTTP `status` when they look like identifiers/numbers, and the original
 * stack frames (file, function, line) without the message lines that head the stack.
 */
export function normaliseError(err: unknown): Error {
  const isError = err instanceof Error;
  const typeName = isError ? safeTypeName(err) : 'NonError';
  const details: string[] = [];
  if (isError || (typeof err === 'object' && err !== null)) {
    const { code, status, statusCode } = err as { code?: unknown; status?: unknown; statusCode?: unknown };
    if ((typeof code === 'string' && SAFE_CODE.test(code)) || (typeof code === 'number' && Number.isInteger(code)))
      details.push(`code=${code}`);
    const httpStatus = [statusCode, status].find((s): s is number => typeof s === 'number' && Number.isInteger(s) && s >= 100 && s <= 599);
    if (httpStatus !== undefined) details.push(`status=${httpStatus}`);
  }
  if (!isError) details.push(`thrown=${err === null ? 'null' : typeof err}`);
  const message = `message withheld${details.length > 0 ? ` (${details.join(', ')})` : ''}`;
  const safe = new Error(message);
  safe.name = typeName;
  safe.stack = [`${typeName}: ${message}`, ...(isError ? stackFrames(err) : [])].join('\n');
  return safe;
}

function safeTypeName(err: Error): string {
  if (typeof err.name === 'string' && SAFE_TYPE_NAME.test(err.name)) return err.name;
  const ctor = (err.constructor as { name?: unknown } | undefined)?.name;
  return typeof ctor === 'string' && SAFE_TYPE_NAME.test(ctor) ? ctor : 'Error';
}

/** The `    at ...` lines after the header; the header (`Name: message`, possibly many lines) is dropped. */
function stackFrames(err: Error): string[] {
  const stack = typeof err.stack === 'string' ? err.stack : '';
  // V8 heads the stack with `Name: message`, as many lines as the message has; skip them all so a
  // message line that merely looks like a frame (`    at x:1:2`) cannot slip through.
  const headerLines = String(err.message).split('\n').length;
  return stack
    .split('\n')
    .slice(headerLines)
    .filter((line) => /^\s+at\s/.test(line))
    .slice(0, 100);
}
