import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { jwtVerify } from 'jose';
import { createDevCertificate, type DevCertificate } from './devCertificate';
import { EMULATOR_ISSUER, tokenSecretBytes } from './managedIdentityEndpoint';
import { sendJson } from './sendJson';
import { readBody } from './requestBody';

/**
 * Minimal typed view of one Application Insights envelope as the exporter posts it
 * (`Microsoft.ApplicationInsights.Request`, `...RemoteDependency`, `...Event`, ...).
 */
export interface Envelope {
  name: string;
  time: string;
  iKey?: string;
  tags?: Record<string, string>;
  data: { baseType: string; baseData: Record<string, unknown> };
}

/** A running local ingestion endpoint. */
export interface IngestionEndpoint {
  /** Connection string whose ingestion and live endpoints both point at this server (https). */
  connectionString: string;
  /** `https://127.0.0.1:PORT` */
  url: string;
  /**
   * The certificate the server presents, to trust in the process that sends telemetry:
   * `NODE_EXTRA_CA_CERTS=<file with this PEM>` for a child process, or
   * `tls.setDefaultCACertificates([...tls.getCACertificates('default'), certPem])` in-process.
   */
  certPem: string;
  /** A file holding `certPem` (the value for NODE_EXTRA_CA_CERTS). */
  certPath: string;
  /** Every envelope received on the track paths so far, in arrival order. */
  items(): Envelope[];
  /** How many envelopes were refused for want of a valid Entra token (`entraOnly`). */
  refusedItems(): number;
  /** Every request body received on any path, decoded (gunzipped) to text, in arrival order. */
  raw(): string[];
  /** Forgets everything received so far. */
  clear(): void;
  /** Closes the server and every open connection. */
  stop(): Promise<void>;
}

/** The instrumentation key in the connection string; Breeze would check it, we only echo it. */
export const INGESTION_INSTRUMENTATION_KEY = '00000000-0000-0000-0000-000000000000';

/** Paths the Azure Monitor exporter posts telemetry to (v2.1 today; v2 by older SDKs). */
const TRACK_PATHS = new Set(['/v2.1/track', '/v2/track']);
/** Cap on one request body, decoded; Breeze itself refuses payloads far smaller than this. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/**
 * Starts a local stand-in for the Application Insights ingestion service (Breeze) on
 * https://127.0.0.1:<port> (an ephemeral port unless `port` is given).
 *
 * HTTPS, not HTTP, because the Azure Monitor exporter rewrites an `http://` IngestionEndpoint to
 * `https://` (ConnectionStringParser.sanitizeUrl) and cannot be told otherwise. The server
 * presents `certificate` when given; pass the local emulators' dev certificate
 * (`createDevCertificate(stateDir)`) so one NODE_EXTRA_CA_CERTS file trusts them all. Without
 * one, a dev certificate is created in a temporary directory (removed by `stop()`).
 * The sending process must not route 127.0.0.1 through a proxy: core-rest-pipeline applies
 * HTTPS_PROXY to it unless NO_PROXY lists `127.0.0.1` (exact host; ports and CIDRs are ignored).
 *
 * - `POST /v2.1/track` and `POST /v2/track` accept a JSON array of envelopes, a single envelope,
 *   or newline-delimited envelopes, plain or `Content-Encoding: gzip`/`deflate`/`br` (gzip is
 *   also recognised by its magic bytes), and answer like Breeze:
 *   `{"itemsReceived":n,"itemsAccepted":n,"errors":[]}`.
 * - Anything else (live metrics / QuickPulse ping and post, statsbeat, settings) is swallowed
 *   with a 200 so no SDK path errors or retries; QuickPulse is told nobody is watching.
 *
 * Tests read what arrived with `items()` (parsed envelopes) and grep `raw()` (every body as
 * text) for values that must never leave the process.
 */
export async function startIngestionEndpoint(opts?: {
  port?: number;
  certificate?: DevCertificate;
  /**
   * The component has local authentication off (`DisableLocalAuth`): telemetry is taken only with
   * an Entra token for Azure Monitor, verified here against the managed-identity emulator's key.
   */
  entraOnly?: { tokenSecret: Uint8Array | string };
}): Promise<IngestionEndpoint> {
  let envelopes: Envelope[] = [];
  let refused = 0;
  let bodies: string[] = [];
  let certificate = opts?.certificate;
  let ownCertDir: string | undefined;
  if (!certificate) {
    ownCertDir = await mkdtemp(join(tmpdir(), 'ingestion-endpoint-'));
    certificate = await createDevCertificate(ownCertDir);
  }

  const server = createServer({ cert: certificate.certPem, key: certificate.keyPem }, (req, res) => {
    handle(req, res).catch(() => {
      // Only reached on a socket-level failure while reading; nothing useful to answer with.
      if (!res.headersSent) sendJson(res, 500, { itemsReceived: 0, itemsAccepted: 0, errors: [] });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const buffer = await readBody(req, MAX_BODY_BYTES);
    if (buffer === undefined) return sendJson(res, 413, breezeError(0, 'Request body too large'));
    let text: string;
    try {
      text = decode(buffer, req.headers['content-encoding']);
    } catch {
      bodies.push(buffer.toString('latin1'));
      return sendJson(res, 400, breezeError(0, 'Request body could not be decompressed'));
    }
    if (buffer.length > 0) bodies.push(text);

    // Not `new URL(req.url, base)`: `//v2.1/track` (an endpoint written with a trailing slash)
    // would parse as a protocol-relative URL with host `v2.1`.
    const path = ((req.url ?? '/').split('?', 1)[0] ?? '/').replace(/\/{2,}/g, '/').replace(/\/$/, '');
    if (TRACK_PATHS.has(path.toLowerCase())) {
      if (req.method !== 'POST') return sendJson(res, 405, breezeError(0, 'Only POST is supported'));
      const parsed = parseEnvelopes(text);
      if (parsed === undefined) return sendJson(res, 400, breezeError(0, 'Invalid JSON'));
      if (opts?.entraOnly && path.toLowerCase() === '/v2/track') {
        refused += parsed.length;
        return sendJson(res, 400, breezeError(parsed.length, MONITOR_AAD_REFUSAL.v2));
      }
      if (opts?.entraOnly) {
        const refusal = await entraRefusal(req.headers.authorization, opts.entraOnly.tokenSecret);
        if (refusal) {
          refused += parsed.length;
          return sendJson(res, refusal.status, breezeError(parsed.length, refusal.message, refusal.status));
        }
      }
      envelopes.push(...parsed);
      return sendJson(res, 200, { itemsReceived: parsed.length, itemsAccepted: parsed.length, errors: [] });
    }
    if (path.toLowerCase().includes('quickpulseservice.svc')) {
      // Live metrics ping/post: "not subscribed" keeps the SDK in slow ping mode and sending nothing.
      res.setHeader('x-ms-qps-subscribed', 'false');
      return sendJson(res, 200, {});
    }
    return sendJson(res, 200, {});
  }

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts?.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
  } catch (err) {
    if (ownCertDir) await rm(ownCertDir, { recursive: true, force: true });
    throw err;
  }
  const origin = `https://127.0.0.1:${port}`;

  return {
    connectionString: `InstrumentationKey=${INGESTION_INSTRUMENTATION_KEY};IngestionEndpoint=${origin}/;LiveEndpoint=${origin}/`,
    url: origin,
    certPem: certificate.certPem,
    certPath: certificate.certPath,
    items: () => [...envelopes],
    refusedItems: () => refused,
    raw: () => [...bodies],
    clear() {
      envelopes = [];
      bodies = [];
    },
    stop: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // The exporter keeps its connection alive; without this, close() waits for it to idle out.
        server.closeAllConnections();
      });
      if (ownCertDir) await rm(ownCertDir, { recursive: true, force: true });
    },
  };
}

/** Undoes the content encoding; gzip is also detected by magic bytes, since proxies may drop the header. */
function decode(buffer: Buffer, encodingHeader: string | undefined): string {
  const encoding = (encodingHeader ?? '').trim().toLowerCase();
  if (encoding === 'gzip' || encoding === 'x-gzip' || (buffer.length >= 2 && buffer[0] === 0x1f && buffer[1] === 0x8b)) {
    return gunzipSync(buffer).toString('utf8');
  }
  if (encoding === 'deflate') return inflateSync(buffer).toString('utf8');
  if (encoding === 'br') return brotliDecompressSync(buffer).toString('utf8');
  return buffer.toString('utf8');
}

/** A JSON array, a single envelope, or newline-delimited envelopes; `undefined` if none of these. */
function parseEnvelopes(text: string): Envelope[] | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  try {
    return toEnvelopes(JSON.parse(trimmed) as unknown);
  } catch {
    // Not a single JSON document: try one per line.
  }
  const out: Envelope[] = [];
  for (const line of trimmed.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    try {
      out.push(...toEnvelopes(JSON.parse(line) as unknown));
    } catch {
      return undefined;
    }
  }
  return out;
}

function toEnvelopes(value: unknown): Envelope[] {
  const list = Array.isArray(value) ? (value as unknown[]) : [value];
  return list.filter(isEnvelope);
}

function isEnvelope(value: unknown): value is Envelope {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { name?: unknown; data?: unknown };
  if (typeof v.name !== 'string' || typeof v.data !== 'object' || v.data === null) return false;
  const d = v.data as { baseType?: unknown; baseData?: unknown };
  return typeof d.baseType === 'string' && typeof d.baseData === 'object' && d.baseData !== null;
}

function breezeError(received: number, message: string, statusCode = 400): unknown {
  return { itemsReceived: received, itemsAccepted: 0, errors: [{ index: 0, statusCode, message }] };
}

/**
 * Learn, "Troubleshoot Microsoft Entra authentication" for Application Insights: on a resource with
 * local authentication off, `v2/track` answers 400 "Authentication not supported" (it takes no Entra
 * token; SDKs that use one send to `v2.1/track`), `v2.1/track` without a valid token 401
 * "Authorization required", and a token without Monitoring Metrics Publisher 403 "Unauthorized".
 * The statuses and reasons are Learn's; the body around them is Breeze's usual
 * `{itemsReceived, itemsAccepted, errors}` (no public capture of these bodies was found).
 */
const MONITOR_AAD_REFUSAL = {
  v2: 'Authentication not supported',
  missing: 'Authorization required',
  invalid: 'Authorization required',
  audience: 'Unauthorized',
} as const;

/**
 * The audiences a token for Azure Monitor ingestion carries: the exporter asks for the scope
 * `https://monitor.azure.com/.default` (monitor-opentelemetry-exporter, httpSender.ts).
 */
const MONITOR_AUDIENCES = ['https://monitor.azure.com', 'https://monitor.azure.com/'];

/**
 * Why a track request is refused on a component with local authentication off, or undefined when
 * its bearer token is valid: 401 without a token or with a bad one, 403 for a token of another
 * audience. Source: MONITOR_AAD_REFUSAL below.
 */
async function entraRefusal(
  authorization: string | undefined,
  secret: Uint8Array | string,
): Promise<{ status: number; message: string } | undefined> {
  const token = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization)?.[1] : undefined;
  if (!token) return { status: 401, message: MONITOR_AAD_REFUSAL.missing };
  try {
    await jwtVerify(token, tokenSecretBytes(secret), { algorithms: ['HS256'], issuer: EMULATOR_ISSUER, audience: MONITOR_AUDIENCES });
    return undefined;
  } catch (err: unknown) {
    const claim = (err as { claim?: string }).claim;
    return claim === 'aud' ? { status: 403, message: MONITOR_AAD_REFUSAL.audience } : { status: 401, message: MONITOR_AAD_REFUSAL.invalid };
  }
}
