import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { TokenCredential } from '@azure/identity';
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineFromOptions,
  createPipelineRequest,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';
import { zipSync, type Zippable } from 'fflate';

const ROOT = path.resolve(__dirname, '..', '..');
/** Type declarations, source maps and docs: not needed to run, and most of the bytes. */
const SKIPPED = /\.(map|d\.ts|d\.mts|d\.cts|md)$/i;

/**
 * The function app's package as a deploy would build it, from the repository's build: `dist/`
 * without the local host, tests, benchmarks and CLI (as .funcignore), `host.json`, `package.json`
 * and the production packages of package-lock.json (entries neither `dev` nor `devOptional`).
 * `omit` leaves paths out, e.g. `host.json`.
 */
export function buildFunctionPackage(opts: { omit?: string[] } = {}): Uint8Array {
  const files: Zippable = {};
  const add = (relative: string): void => {
    if (opts.omit?.includes(relative)) return;
    files[relative] = [readFileSync(path.join(ROOT, relative)), { level: 0 }];
  };
  const walk = (relative: string): void => {
    for (const entry of readdirSync(path.join(ROOT, relative), { withFileTypes: true })) {
      const child = `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        // Nested node_modules are packages of their own, listed in the lock file when they are production ones.
        if (entry.name !== 'node_modules') walk(child);
      } else if (!SKIPPED.test(entry.name)) {
        add(child);
      }
    }
  };
  for (const dir of ['dist/functions', 'dist/shared']) walk(dir);
  add('host.json');
  add('package.json');
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  for (const [location, entry] of Object.entries(lock.packages)) {
    if (location === '' || entry.dev || entry.devOptional) continue;
    if (statSync(path.join(ROOT, location), { throwIfNoEntry: false })?.isDirectory()) walk(location);
  }
  return zipSync(files);
}

/** A request through the proxy (HTTPS_PROXY) with an ARM token, as a deploy process sends it. */
export async function scmRequest(
  credential: TokenCredential,
  method: 'GET' | 'POST',
  url: string,
  body?: Uint8Array,
): Promise<PipelineResponse & { json: any }> {
  const pipeline = createPipelineFromOptions({ retryOptions: { maxRetries: 0 } });
  pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential, scopes: 'https://management.azure.com/.default' }));
  const request = createPipelineRequest({
    url,
    method,
    headers: createHttpHeaders(body ? { 'Content-Type': 'application/zip' } : {}),
    body: body ? Buffer.from(body) : undefined,
  });
  const response = await pipeline.sendRequest(createDefaultHttpClient(), request);
  return { ...response, json: response.bodyAsText ? JSON.parse(response.bodyAsText) : undefined };
}

/** An anonymous request through the proxy (HTTPS_PROXY), e.g. to `https://<app>.azurewebsites.net`. */
export async function siteRequest(url: string, headers: Record<string, string> = {}): Promise<PipelineResponse> {
  const pipeline = createPipelineFromOptions({ retryOptions: { maxRetries: 0 } });
  return pipeline.sendRequest(
    createDefaultHttpClient(),
    createPipelineRequest({ url, method: 'GET', headers: createHttpHeaders(headers) }),
  );
}

/** One Deploy: publishes `zip` to the app's SCM site and polls the deployment until it completes. */
export async function publishPackage(
  credential: TokenCredential,
  app: string,
  zip: Uint8Array,
): Promise<{ status: number; deployment?: any; polls: number }> {
  const publish = await scmRequest(credential, 'POST', `https://${app}.scm.azurewebsites.net/api/publish?RemoteBuild=false`, zip);
  if (publish.status !== 202) return { status: publish.status, deployment: publish.json, polls: 0 };
  const location = publish.headers.get('location');
  if (!location) throw new Error('One Deploy answered 202 without Location');
  for (let polls = 1; polls < 100; polls++) {
    const poll = await scmRequest(credential, 'GET', location);
    if (poll.status === 200) return { status: 202, deployment: poll.json, polls };
    if (poll.status !== 202) throw new Error(`Deployment poll answered ${poll.status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('The deployment never completed');
}
