/**
 * After a deployment: the OpenAPI document answers, a health-check run is started through the
 * Functions admin endpoint (with the host's master key, read through ARM), and the report it stores
 * is read back from the app's table with the deployer's sign-in (the deployment gives the deployer
 * Storage Table Data Reader on that one table).
 */
import type { TokenCredential } from '@azure/core-auth';
import { createHttpHeaders, createPipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline';
import { createTableHealthReportStore } from '../../shared/health/healthReportStore';
import type { HealthReport } from '../../shared/health/healthReport';
import { armAuthenticatedClient } from './oneDeploy';

export interface SmokeTestOptions {
  /** `<app>.azurewebsites.net`. */
  readonly host: string;
  readonly masterKey: () => Promise<string>;
  /** The account's table endpoint, `https://<account>.table.core.windows.net`. */
  readonly tableServiceUri: string;
  readonly credential: TokenCredential;
  /** How long the app may take to start, and a role to apply. */
  readonly deadlineMs: number;
  readonly pollIntervalMs: number;
  readonly progress: (line: string) => void;
}

const HEALTH_FUNCTION = 'healthCheck';

/** Runs the smoke test; resolves with the new health report. Throws with what did not answer. */
export async function smokeTest(o: SmokeTestOptions): Promise<HealthReport> {
  const { pipeline, client } = armAuthenticatedClient(undefined);
  const until = Date.now() + o.deadlineMs;
  const send = (url: string, method: 'GET' | 'POST', headers: Record<string, string> = {}, body?: string): Promise<PipelineResponse> =>
    pipeline.sendRequest(client, createPipelineRequest({ url, method, headers: createHttpHeaders(headers), body, timeout: 60_000 }));
  /** Repeats while the app is still starting (404 before its functions are indexed, 5xx while it starts). */
  const whileStarting = async (what: string, call: () => Promise<PipelineResponse>): Promise<PipelineResponse> => {
    for (;;) {
      let response: PipelineResponse | undefined;
      let failure: string;
      try {
        response = await call();
        if (response.status < 500 && response.status !== 404) return response;
        failure = `answered ${response.status}`;
      } catch (err: unknown) {
        failure = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() + o.pollIntervalMs > until) throw new Error(`${what}: ${failure}, still after ${Math.round(o.deadlineMs / 1000)} s`);
      await sleep(o.pollIntervalMs);
    }
  };

  const openApiUrl = `https://${o.host}/api/openapi.json`;
  const doc = await whileStarting(`GET ${openApiUrl}`, () => send(openApiUrl, 'GET'));
  if (doc.status !== 200 || !/"openapi"\s*:/.test(doc.bodyAsText ?? '')) {
    throw new Error(`GET ${openApiUrl} answered ${doc.status} without an OpenAPI document`);
  }
  o.progress(`  GET /api/openapi.json: ${doc.status}`);

  const store = createTableHealthReportStore(
    { kind: 'identity', tableServiceUri: o.tableServiceUri, clientId: undefined, resourceId: undefined },
    o.credential,
  );
  const before = await readReport(store, o, until);
  const key = await o.masterKey();
  const adminUrl = `https://${o.host}/admin/functions/${HEALTH_FUNCTION}`;
  const started = await whileStarting(`POST ${adminUrl}`, () =>
    send(adminUrl, 'POST', { 'x-functions-key': key, 'Content-Type': 'application/json' }, JSON.stringify({ input: '' })),
  );
  if (started.status !== 202 && started.status !== 200) throw new Error(`POST ${adminUrl} answered ${started.status}`);
  o.progress(`  health check started (POST /admin/functions/${HEALTH_FUNCTION}: ${started.status})`);

  for (;;) {
    const report = await readReport(store, o, until);
    if (report && report.startedAt !== before?.startedAt) return report;
    if (Date.now() + o.pollIntervalMs > until)
      throw new Error(`no new health report in ${o.tableServiceUri} after ${Math.round(o.deadlineMs / 1000)} s`);
    await sleep(o.pollIntervalMs);
  }
}

/** The latest report; a 403 (the reader role not applied yet) is waited out until the deadline. */
async function readReport(
  store: ReturnType<typeof createTableHealthReportStore>,
  o: SmokeTestOptions,
  until: number,
): Promise<HealthReport | undefined> {
  let told = false;
  for (;;) {
    try {
      return await store.latestReport();
    } catch (err: unknown) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status !== 403 || Date.now() + o.pollIntervalMs > until) {
        throw new Error(`reading the health report from ${o.tableServiceUri}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (!told) o.progress('  your Storage Table Data Reader role is still being applied; waiting');
      told = true;
      await sleep(o.pollIntervalMs);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
