import { type ChildProcess, spawn } from 'node:child_process';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SiteState } from './siteState';

export interface SiteRuntimeOptions {
  /** The platform's environment of every site (IDENTITY_ENDPOINT, HTTPS_PROXY, PATH, …); app settings come first, these win. */
  platformEnv(): Record<string, string>;
  /** Where the emulator's log lines go. */
  log: (line: string) => void;
  /** How long a host may take to listen. Default 60 s. */
  startTimeoutMs?: number;
}

interface HostProcess {
  child: ChildProcess;
  /** Resolves with the port once the host listens; rejects when it exits or times out first. */
  ready: Promise<number>;
  exited: Promise<void>;
  /** stdout and stderr, the last few thousand characters. */
  output: string;
  /** Why it cannot serve (exited), once it cannot. */
  failure: string | undefined;
}

const OUTPUT_TAIL_CHARS = 4_000;
const STOP_TIMEOUT_MS = 5_000;
const DEFAULT_START_TIMEOUT_MS = 60_000;

/**
 * The sites' running code: one local Functions host process per site with a deployed package
 * (`node <package>/dist/local/hostProcess.js --port <port>` in the extracted package, with the
 * site's app settings plus the platform environment), restarted on each publish or app-settings
 * change, and the forwarding of `https://<app>.azurewebsites.net` requests to it.
 */
export class SiteRuntime {
  private readonly hosts = new Map<string, HostProcess>();
  /** Per site, the restart under way: requests wait for it. */
  private readonly switching = new Map<string, Promise<void>>();
  private readonly oldDirs = new Set<string>();

  constructor(private readonly opts: SiteRuntimeOptions) {}

  /** (Re)starts the site's host on its deployed package; does nothing for a site without one. */
  restart(site: SiteState): void {
    const key = site.name.toLowerCase();
    const previous = this.switching.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      const old = this.hosts.get(key);
      this.hosts.delete(key);
      if (old) await stopProcess(old);
      if (site.deployed) this.hosts.set(key, this.start(site, site.deployed.dir));
    });
    this.switching.set(key, next);
  }

  /** Forgets a replaced package's folder; it is removed at {@link stopAll}. */
  retire(dir: string): void {
    this.oldDirs.add(dir);
  }

  /** stdout and stderr of the site's current host (the last few thousand characters). */
  output(siteName: string): string {
    return this.hosts.get(siteName.toLowerCase())?.output ?? '';
  }

  /** Answers a request to `https://<app>.azurewebsites.net`. */
  async serve(site: SiteState | undefined, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    // Unsourced: the text of App Service's 404 page for an unknown app is modelled, not verified.
    if (!site) return sendText(res, 404, 'Error 404 - Web app not found.');
    await this.switching.get(site.name.toLowerCase());
    // The Functions host's own routes need the host's keys.
    const url = new URL(req.url ?? '/', 'https://localhost');
    const presented = String(req.headers['x-functions-key'] ?? url.searchParams.get('code') ?? '');
    // Learn: "Work with access keys in Azure Functions" (the master key gives administrative access to the runtime REST APIs)
    if (path.toLowerCase().startsWith('/admin/') && presented !== site.masterKey) return sendText(res, 401, '');
    // Learn: "Azure Event Grid trigger for Azure Functions" (/runtime/webhooks/eventgrid?functionName=…&code={systemkey})
    if (path.toLowerCase() === '/runtime/webhooks/eventgrid' && presented !== site.eventGridKey && presented !== site.masterKey) {
      return sendText(res, 401, '');
    }
    const host = this.hosts.get(site.name.toLowerCase());
    if (!host) {
      // Unsourced: the default page text of a function app without code is modelled from the live page.
      if (path === '/' || path === '') return sendText(res, 200, 'Your Functions 4.0 app is up and running', 'text/html');
      return sendText(res, 404, '');
    }
    let port: number;
    try {
      port = await host.ready;
    } catch {
      // Unsourced: a host that cannot start answers 503, modelled from App Service's answer for a failing app.
      return sendText(res, 503, 'Service Unavailable', 'text/html');
    }
    if (host.failure) return sendText(res, 503, 'Service Unavailable', 'text/html');
    await forward(req, res, port);
  }

  /** Stops every host and removes every extracted package. */
  async stopAll(dirs: string[]): Promise<void> {
    await Promise.allSettled(this.switching.values());
    await Promise.all([...this.hosts.values()].map((h) => stopProcess(h)));
    this.hosts.clear();
    await Promise.all([...dirs, ...this.oldDirs].map((d) => rm(d, { recursive: true, force: true })));
  }

  private start(site: SiteState, dir: string): HostProcess {
    const name = site.name.toLowerCase();
    const env = {
      ...site.appSettings,
      ...this.opts.platformEnv(),
      // Learn: "Environment variables and app settings in Azure App Service" (WEBSITE_HOSTNAME, WEBSITE_SITE_NAME set by the platform)
      WEBSITE_HOSTNAME: `${name}.azurewebsites.net`,
      WEBSITE_SITE_NAME: site.name,
    };
    const state: HostProcess = {
      child: undefined as unknown as ChildProcess,
      ready: Promise.resolve(0),
      exited: Promise.resolve(),
      output: '',
      failure: undefined,
    };
    state.ready = freePort().then(
      (port) =>
        new Promise<number>((resolve, reject) => {
          if (state.failure !== undefined) throw new Error(state.failure);
          const child = spawn(process.execPath, [join(dir, 'dist', 'local', 'hostProcess.js'), '--port', String(port)], {
            cwd: dir,
            env,
            stdio: ['ignore', 'pipe', 'pipe'],
            windowsHide: true,
          });
          state.child = child;
          // A site dies with the process that runs the emulator, even one that never called stop().
          const orphanGuard = (): void => {
            child.kill('SIGKILL');
          };
          process.once('exit', orphanGuard);
          state.exited = new Promise((done) =>
            child.once('exit', () => {
              process.off('exit', orphanGuard);
              done();
            }),
          );
          const timer = setTimeout(() => {
            reject(new Error('did not listen in time'));
            child.kill('SIGKILL');
          }, this.opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
          const keep = (chunk: Buffer): void => {
            state.output = (state.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
          };
          child.stdout?.on('data', (chunk: Buffer) => {
            keep(chunk);
            if (state.output.includes('Host listening on')) {
              clearTimeout(timer);
              resolve(port);
            }
          });
          child.stderr?.on('data', keep);
          child.once('error', (err) => {
            clearTimeout(timer);
            state.failure = `could not start: ${err.message}`;
            reject(err);
          });
          child.once('exit', (code, signal) => {
            clearTimeout(timer);
            if (state.failure === undefined) {
              state.failure = `exited (${signal ?? `code ${String(code)}`})`;
              this.opts.log(`[site ${site.name}] host ${state.failure}; its output ends with:\n${state.output.trim()}`);
            }
            reject(new Error(state.failure));
          });
        }),
    );
    // A rejection is answered per request (503); it must not go unhandled meanwhile.
    state.ready.catch(() => undefined);
    return state;
  }
}

async function stopProcess(host: HostProcess): Promise<void> {
  host.failure ??= 'stopped';
  const child = host.child as ChildProcess | undefined;
  if (!child) {
    // Not spawned yet: it will not be (see start), and its readiness fails.
    await host.ready.catch(() => undefined);
    return;
  }
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([
    host.exited.then(() => false),
    new Promise<boolean>((done) => (timer = setTimeout(() => done(true), STOP_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  if (late) {
    child.kill('SIGKILL');
    await host.exited;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function forward(req: IncomingMessage, res: ServerResponse, port: number): Promise<void> {
  return new Promise((done) => {
    const upstream = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, 'x-forwarded-proto': 'https', 'x-forwarded-for': req.socket.remoteAddress ?? '127.0.0.1' },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.once('end', () => done());
        answer.once('error', () => {
          res.destroy();
          done();
        });
      },
    );
    upstream.once('error', () => {
      if (!res.headersSent) sendText(res, 502, 'Bad Gateway', 'text/html');
      else res.destroy();
      done();
    });
    req.pipe(upstream);
  });
}

function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain'): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': `${type}; charset=utf-8`, 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}
