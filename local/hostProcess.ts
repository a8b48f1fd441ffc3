/**
 * One local Functions host process: `node dist/local/hostProcess.js [--port 7071]`.
 * Reads local.settings.json like `func start`, loads the app's function definitions (which
 * validates the settings) and serves them. `npm start` runs it through local/start.ts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../shared/errors';
import { flushRuntime } from '../shared/runtime';
import { startLocalHost } from './host';
import { applyLocalSettings, functionsPort, portInUseMessage } from './localSettings';

async function main(): Promise<void> {
  applyLocalSettings();
  const portArg = process.argv.indexOf('--port');
  const port = portArg > 0 ? Number(process.argv[portArg + 1]) : functionsPort();
  let definitions;
  // Outside the Functions host, @azure/functions warns that it runs in "test mode" and skips each
  // app.* registration. Here that is expected (this host serves the same definitions itself).
  /* eslint-disable no-console -- filtering the library's own console output */
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!(typeof args[0] === 'string' && /"@azure\/functions" package/.test(args[0]))) warn(...args);
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after the settings are applied
    ({ functionDefinitions: definitions } = require('../functions/index') as typeof import('../functions/index'));
  } catch (err: unknown) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  } finally {
    console.warn = warn;
  }
  /* eslint-enable no-console */
  let host;
  try {
    host = await startLocalHost({ definitions, port, logLevel: hostLogLevel() });
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    // One line naming the port and how to move, rather than Node's bare `listen EADDRINUSE`.
    process.stderr.write(`${portInUseMessage(port)}\n`);
    process.exit(1);
  }
  process.stdout.write(`Host listening on ${host.url}\n`);
  const stop = (): void => {
    void host
      .close()
      .then(() => flushRuntime())
      .finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** The log level as the Functions host reads it: the app setting override, else host.json. */
function hostLogLevel(): string | undefined {
  const override = process.env.AzureFunctionsJobHost__logging__logLevel__default;
  if (override) return override;
  try {
    const hostJson = JSON.parse(readFileSync(path.resolve(__dirname, '../../host.json'), 'utf8')) as {
      logging?: { logLevel?: { default?: string } };
    };
    return hostJson.logging?.logLevel?.default;
  } catch {
    return undefined;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`Host failed to start: ${err instanceof Error ? err.message : 'error'}\n`);
  process.exit(1);
});
