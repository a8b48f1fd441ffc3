import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseJsonText } from './jsonText';

/**
 * Reads `local.settings.json` the way `func start` does: its `Values` become environment
 * variables, but never override a variable that is already set.
 * @returns the names it set.
 */
export function applyLocalSettings(dir: string = process.cwd(), env: NodeJS.ProcessEnv = process.env): string[] {
  const file = path.join(dir, 'local.settings.json');
  if (!existsSync(file)) return [];
  return applySettingsFile(file, env);
}

/**
 * Reads a settings file in the `local.settings.json` format: its `Values` become environment
 * variables, but never override a variable that is already set.
 * @returns the names it set.
 * @throws Error naming the file when it cannot be read, or the file, line and column when it is not valid JSON.
 */
export function applySettingsFile(file: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const name = path.basename(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`${name}: cannot be read (${file})`);
  }
  // A syntax error names its line and column: `local.settings.json:4:9: Expected ',' or '}' ...`.
  const values = (parseJsonText(text, name) as { Values?: Record<string, unknown> } | null)?.Values ?? {};
  const applied: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (env[key] === undefined && value !== null && value !== undefined) {
      env[key] = typeof value === 'string' ? value : JSON.stringify(value);
      applied.push(key);
    }
  }
  return applied;
}

/** The local host's port when `FUNCTIONS_PORT` is not set, as `func start`'s. */
export const DEFAULT_FUNCTIONS_PORT = 7071;

/**
 * The local host's port: `FUNCTIONS_PORT`, else {@link DEFAULT_FUNCTIONS_PORT}. Only the local
 * host reads it (`npm start`); it is not an app setting, so not in shared/config.ts.
 * @throws Error naming FUNCTIONS_PORT when it is not a port number.
 */
export function functionsPort(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FUNCTIONS_PORT;
  if (raw === undefined || raw === '') return DEFAULT_FUNCTIONS_PORT;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65535) throw new Error(`FUNCTIONS_PORT: must be a port number (1-65535), not "${raw}"`);
  return port;
}

/** The one line `npm start` prints when its port is taken. */
export function portInUseMessage(port: number): string {
  return `Port ${port} is in use: stop what holds it, or set FUNCTIONS_PORT=<another port>`;
}
