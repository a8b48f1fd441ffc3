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
