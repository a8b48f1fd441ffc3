import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

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
 * @throws Error naming the file when it cannot be read or is not valid JSON.
 */
export function applySettingsFile(file: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const name = path.basename(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`${name}: cannot be read (${file})`);
  }
  let values: Record<string, unknown>;
  try {
    values = (JSON.parse(text) as { Values?: Record<string, unknown> }).Values ?? {};
  } catch {
    throw new Error(`${name}: is not valid JSON`);
  }
  const applied: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (env[key] === undefined && value !== null && value !== undefined) {
      env[key] = typeof value === 'string' ? value : JSON.stringify(value);
      applied.push(key);
    }
  }
  return applied;
}
