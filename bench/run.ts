/**
 * `npm run bench`: the resolve benchmarks, each against a baseline measured in the same run.
 * Prints a table and writes bench/results/latest.json. Not part of `npm test`.
 *
 * 1. Cache-hit resolves per second through the local host vs a bare node:http server answering a
 *    fixed JSON body (both separate processes, same load generator).  Goal: >= 0.7x.
 * 2. Vault GETs caused by 1,000 concurrent cold requests for one secret.  Goal: exactly 1.
 * 3. Cold import of the function app (until it can serve) vs importing @azure/functions +
 *    @azure/keyvault-secrets + @azure/identity alone.  Goal: <= 1.3x.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { startLocalAzure } from '../local/emulators/localAzure';

const ROOT = path.resolve(__dirname, '../..');
const DURATION_SECONDS = Number(process.env.BENCH_DURATION_SECONDS ?? 8);
const CONNECTIONS = 50;
const COLD_IMPORT_RUNS = Number(process.env.BENCH_IMPORT_RUNS ?? 10);
const KEY = 'bench-key';

interface Row {
  readonly benchmark: string;
  readonly measured: string;
  readonly baseline: string;
  readonly ratio: number;
  readonly goal: string;
  readonly met: boolean;
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-bench-'));
  const azure = await startLocalAzure({ stateDir, vaults: ['bench-vault'] });
  const rows: Row[] = [];
  try {
    azure.keyVault.setSecret('bench-vault', 'bench-secret', 'bench-value');
    azure.keyVault.setSecret('bench-vault', 'cold-secret', 'cold-value');
    const env = {
      ...azure.env,
      KEY_VAULT_URI: azure.keyVault.vaultUri('bench-vault'),
      ACCESS_POLICY: JSON.stringify({ callers: [{ name: 'bench', identities: [{ apiKeySha256: createHash('sha256').update(KEY).digest('hex') }], allow: ['*'] }] }),
      // As in Azure, the host logs warnings and errors only under load.
      AzureFunctionsJobHost__logging__logLevel__default: 'Warning',
    };
    const host = await spawnNode([path.join(ROOT, 'dist/local/hostProcess.js'), '--port', '0'], env, /Host listening on (http:\/\/\S+)/);
    const bare = await spawnNode(['-e', BARE_SERVER], {}, /listening on (http:\/\/\S+)/);
    try {
      // 1. Throughput of cache hits.
      const warm = await fetch(`${host.url}/api/secrets/bench-secret`, { headers: { 'x-api-key': KEY } });
      if (warm.status !== 200) throw new Error(`warm-up answered ${warm.status}`);
      const hostRps = await load(`${host.url}/api/secrets/bench-secret`, { 'x-api-key': KEY });
      const bareRps = await load(`${bare.url}/`, {});
      rows.push({
        benchmark: 'cache-hit resolves/s (local host vs bare node:http)',
        measured: hostRps.toFixed(0),
        baseline: bareRps.toFixed(0),
        ratio: hostRps / bareRps,
        goal: '>= 0.7',
        met: hostRps / bareRps >= 0.7,
      });

      // 2. Coalescing: 1,000 concurrent cold requests, the vault answering in 100 ms.
      azure.keyVault.setFault({ kind: 'latency', ms: 100 });
      azure.keyVault.resetCounts();
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1000 });
      const statuses = await Promise.all(Array.from({ length: 1000 }, () => get(`${host.url}/api/secrets/cold-secret`, agent)));
      agent.destroy();
      azure.keyVault.clearFaults();
      const gets = azure.keyVault.requestCount({ method: 'GET', path: '/secrets/cold-secret' });
      const ok = statuses.filter((s) => s === 200).length;
      rows.push({ benchmark: `vault GETs for 1,000 concurrent cold requests (${ok} answered 200)`, measured: String(gets), baseline: '1', ratio: gets, goal: '== 1', met: gets === 1 && ok === 1000 });
    } finally {
      host.stop();
      bare.stop();
    }

    // 3. Cold import.
    const appMs: number[] = [];
    const sdkMs: number[] = [];
    for (let i = 0; i < COLD_IMPORT_RUNS; i++) {
      appMs.push(timeNode(COLD_APP, { KEY_VAULT_URI: 'https://bench-vault.vault.azure.net/' }));
      sdkMs.push(timeNode(COLD_SDK, {}));
    }
    const app = median(appMs);
    const sdk = median(sdkMs);
    rows.push({ benchmark: `cold import, median of ${COLD_IMPORT_RUNS} (app ready to serve vs the 3 SDKs alone), ms`, measured: app.toFixed(0), baseline: sdk.toFixed(0), ratio: app / sdk, goal: '<= 1.3', met: app / sdk <= 1.3 });
  } finally {
    await azure.stop();
  }

  printTable(rows);
  const outDir = path.join(ROOT, 'bench/results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'latest.json'), JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: os.cpus().length, rows }, null, 2));
  process.stdout.write(`\nwritten: bench/results/latest.json\n`);
}

const BARE_SERVER = `
const http = require('node:http');
const body = JSON.stringify({ name: 'bench-secret', vault: 'default', version: '0'.repeat(32), value: 'bench-value', contentType: null, enabled: true, notBefore: null, expiresOn: null, updatedOn: new Date().toISOString() });
const server = http.createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' }); res.end(body); });
server.keepAliveTimeout = 65000;
server.listen(0, '127.0.0.1', () => console.log('listening on http://127.0.0.1:' + server.address().port));
process.on('SIGTERM', () => process.exit(0));
`;
const COLD_APP = `require(${JSON.stringify(path.join(ROOT, 'dist/functions/index.js'))}); require(${JSON.stringify(path.join(ROOT, 'dist/shared/runtime.js'))}).getRuntime();`;
const COLD_SDK = `require('@azure/functions'); require('@azure/keyvault-secrets'); require('@azure/identity');`;

function timeNode(code: string, env: Record<string, string>): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const elapsed = performance.now() - started;
  if (result.status !== 0) throw new Error(`cold import failed: ${result.stderr.toString()}`);
  return elapsed;
}

async function spawnNode(args: string[], env: Record<string, string>, ready: RegExp): Promise<{ url: string; stop(): void }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = ready.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`process exited with ${code}: ${out}`)));
  });
  child.stdout.resume();
  return { url, stop: () => child.kill('SIGTERM') };
}

async function load(url: string, headers: Record<string, string>): Promise<number> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_SECONDS, headers });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`load against ${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return result.requests.average;
}

function get(url: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent, headers: { 'x-api-key': KEY } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function printTable(rows: Row[]): void {
  const header = ['benchmark', 'measured', 'baseline', 'ratio', 'goal', 'met'];
  const cells = rows.map((r) => [r.benchmark, r.measured, r.baseline, r.ratio.toFixed(2), r.goal, r.met ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]): string => c.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ');
  process.stdout.write(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${cells.map(line).join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : 'error'}\n`);
  process.exit(1);
});
