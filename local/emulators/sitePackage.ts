import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import type { DeployedPackage, IndexedFunction } from './siteState';

/** A package that cannot run: the deployment fails with this reason (Kudu's `status_text`). */
// Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go (a failed deployment reports status 3 with status_text)
export class PackageError extends Error {}

/** How many files are written at once while extracting. */
const WRITE_CONCURRENCY = 32;
const INDEX_TIMEOUT_MS = 60_000;

/**
 * Runs in a child Node process in the extracted package, as the Node.js worker indexes a v4-model
 * app: loads package.json `main` with `@azure/functions`'s `app.*` registrations captured, and
 * prints what was registered. A failure to load (a bad setting, a missing module) after some
 * registrations keeps those, as the worker would have seen them.
 */
const INDEXER = `
const fs = require('node:fs');
const path = require('node:path');
const out = { functions: [], error: undefined };
try {
  const app = require(require.resolve('@azure/functions', { paths: [process.cwd()] })).app;
  const http = new Set(['http', 'get', 'put', 'post', 'patch', 'deleteRequest']);
  for (const key of Object.keys(app)) {
    if (typeof app[key] !== 'function' || key === 'setup' || key === 'hook') continue;
    app[key] = (name, options) => {
      if (typeof name !== 'string') return;
      const o = options && typeof options === 'object' ? options : {};
      const fn = { name, trigger: http.has(key) ? 'http' : key };
      if (fn.trigger === 'http') {
        fn.route = typeof o.route === 'string' ? o.route : name;
        fn.methods = Array.isArray(o.methods) ? o.methods : key === 'http' ? undefined : [key === 'deleteRequest' ? 'DELETE' : key.toUpperCase()];
        fn.authLevel = typeof o.authLevel === 'string' ? o.authLevel : 'anonymous';
      }
      if (typeof o.schedule === 'string') fn.schedule = o.schedule;
      out.functions.push(fn);
    };
  }
  const main = JSON.parse(fs.readFileSync('package.json', 'utf8')).main || 'index.js';
  require(path.resolve(main));
} catch (err) {
  out.error = String((err && err.message) || err);
}
process.stdout.write(JSON.stringify(out));
process.exit(0);
`;

/**
 * Checks a One Deploy zip the way the Functions host needs it (host.json at the root, package.json
 * `main` present), extracts it into a new temporary folder, adds the repository's compiled local
 * host (`distLocalDir/*.js` → `dist/local/`) so the site can run it, and indexes its functions.
 * @throws PackageError naming what is wrong with the package.
 */
export async function preparePackage(
  zip: Uint8Array,
  opts: { siteName: string; deploymentId: string; distLocalDir: string | undefined; env: Record<string, string> },
): Promise<DeployedPackage> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(zip);
  } catch (err) {
    // Unsourced: the wording of Kudu's failure for a corrupt zip is not verified.
    throw new PackageError(`The package is not a valid zip file: ${(err as Error).message}`);
  }
  const files = new Map<string, Uint8Array>();
  for (const [rawName, data] of Object.entries(entries)) {
    const name = rawName.replace(/\\/g, '/').replace(/^\.\//, '');
    if (name.endsWith('/')) continue;
    // Unsourced: refusing entries outside the root is a safety choice of the emulator (zip-slip), not a documented Kudu message.
    if (name.startsWith('/') || name.split('/').includes('..'))
      throw new PackageError(`The package has an entry outside its root: '${rawName}'.`);
    files.set(name, data);
  }
  // Unsourced: modelled from the Functions host, which reads host.json at the package root; the failure wording is not verified.
  const hostJson = files.get('host.json');
  if (!hostJson) throw new PackageError("Deployment failed: 'host.json' was not found at the root of the package.");
  const packageJson = files.get('package.json');
  if (!packageJson) throw new PackageError("Deployment failed: 'package.json' was not found at the root of the package.");
  const main = parseJson<{ main?: unknown }>(packageJson, 'package.json').main;
  const mainPath = typeof main === 'string' && main.trim() !== '' ? main.replace(/^\.\//, '') : 'index.js';
  // Learn: "Azure Functions Node.js developer guide" (package.json main, a path or glob, loads the v4 registrations); failure wording unsourced
  if (!matchesAny(mainPath, files)) {
    throw new PackageError(`Deployment failed: package.json 'main' points at '${mainPath}', which is not in the package.`);
  }
  const host = parseJson<{ extensions?: { http?: { routePrefix?: unknown } } }>(hostJson, 'host.json');
  const prefix = host.extensions?.http?.routePrefix;

  const dir = await mkdtemp(join(tmpdir(), `site-${opts.siteName.toLowerCase()}-`));
  try {
    await writeAll(dir, files);
    if (opts.distLocalDir !== undefined) await copyLocalHost(opts.distLocalDir, join(dir, 'dist', 'local'));
    const functions = await indexFunctions(dir, opts.env);
    return {
      files,
      functions,
      dir,
      main: mainPath,
      // Learn: "host.json reference for Azure Functions 2.x and later" (extensions.http.routePrefix, default api)
      routePrefix: typeof prefix === 'string' ? prefix : 'api',
      deploymentId: opts.deploymentId,
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function parseJson<T>(data: Uint8Array, name: string): T {
  try {
    return JSON.parse(Buffer.from(data).toString('utf8')) as T;
  } catch {
    // Unsourced: the failure wording for an unreadable host.json or package.json is not verified.
    throw new PackageError(`Deployment failed: '${name}' is not valid JSON.`);
  }
}

/** `main` may be a path or a glob (`dist/functions/*.js`), as the Node.js worker allows. */
function matchesAny(main: string, files: Map<string, Uint8Array>): boolean {
  if (!/[*?]/.test(main)) return files.has(main);
  const escaped = main.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  const source = escaped
    .split('**/')
    .map((part) => part.replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
    .join('(?:.*/)?');
  const pattern = new RegExp(`^${source}$`);
  return [...files.keys()].some((f) => pattern.test(f));
}

async function writeAll(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  const queue = [...files.entries()];
  const made = new Set<string>();
  const worker = async (): Promise<void> => {
    for (let next = queue.pop(); next; next = queue.pop()) {
      const [name, data] = next;
      const target = join(dir, name);
      const parent = dirname(target);
      if (!made.has(parent)) {
        await mkdir(parent, { recursive: true });
        made.add(parent);
      }
      await writeFile(target, data);
    }
  };
  await Promise.all(Array.from({ length: WRITE_CONCURRENCY }, worker));
}

async function copyLocalHost(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  const names = (await readdir(from)).filter((n) => n.endsWith('.js'));
  if (!names.includes('hostProcess.js')) throw new Error(`No compiled local host in ${from} (run npm run build)`);
  await Promise.all(names.map((n) => copyFile(join(from, n), join(to, n))));
}

function indexFunctions(dir: string, env: Record<string, string>): Promise<IndexedFunction[]> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-e', INDEXER],
      { cwd: dir, env, timeout: INDEX_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024, windowsHide: true },
      (_err, stdout) => {
        try {
          resolve((JSON.parse(stdout) as { functions: IndexedFunction[] }).functions);
        } catch {
          // The worker could not load the app at all: the host would index no function either.
          resolve([]);
        }
      },
    );
  });
}
