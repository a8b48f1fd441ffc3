/**
 * What a deployment changes: each resource created, updated (with the properties that differ) or
 * unchanged, computed by comparing the properties the deployment manages with what Azure returns.
 */

export type Action = 'create' | 'update' | 'unchanged';

/** One property that differs: its path (`siteConfig.minTlsVersion`), what Azure has and what the file wants. */
export interface Difference {
  readonly path: string;
  readonly from: unknown;
  readonly to: unknown;
}

export interface Change {
  /** What and which, e.g. `storage account contosobrokerst`. */
  readonly resource: string;
  readonly action: Action;
  /** For `update`: what differs. */
  readonly differences: readonly Difference[];
  /** Values are not printed (app settings): only the paths are. */
  readonly hideValues?: boolean;
}

/**
 * The properties of `desired` that `actual` does not match. Only what `desired` names is compared
 * (Azure adds properties of its own); objects are compared key by key, lists as wholes (order kept
 * unless `unordered`). Strings compare without regard to case, as ARM treats ids and enum values
 * (Log Analytics answers the SKU `PerGB2018` as `pergb2018`), except tag values, which keep theirs.
 */
export function differences(desired: unknown, actual: unknown, options: { unordered?: boolean } = {}, path = ''): Difference[] {
  if (isPlainObject(desired)) {
    const current = isPlainObject(actual) ? actual : {};
    return Object.entries(desired).flatMap(([key, value]) =>
      value === undefined ? [] : differences(value, current[key], options, path ? `${path}.${key}` : key),
    );
  }
  if (Array.isArray(desired)) {
    const current = Array.isArray(actual) ? actual : [];
    const canonical = (list: unknown[]): string[] => {
      const items = list.map((item) => JSON.stringify(normalise(item)));
      return options.unordered ? items.sort() : items;
    };
    return JSON.stringify(canonical(desired)) === JSON.stringify(canonical(current)) ? [] : [{ path, from: actual, to: desired }];
  }
  const exact = path === 'tags' || path.startsWith('tags.');
  return same(desired, actual, exact) ? [] : [{ path, from: actual, to: desired }];
}

function same(desired: unknown, actual: unknown, exact: boolean): boolean {
  if (typeof desired === 'string' && typeof actual === 'string' && !exact) return normaliseString(desired) === normaliseString(actual);
  return desired === actual;
}

function normaliseString(s: string): string {
  return s.toLowerCase();
}

function normalise(value: unknown): unknown {
  if (typeof value === 'string') return normaliseString(value);
  if (Array.isArray(value)) return value.map(normalise);
  if (isPlainObject(value)) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .filter((k) => value[k] !== undefined)
        .map((k) => [k, normalise(value[k])]),
    );
  }
  return value;
}

/** Region names as ARM accepts them: `West Europe` and `westeurope` are the same region. */
export function sameLocation(a: string | undefined, b: string | undefined): boolean {
  const canon = (s: string | undefined): string => (s ?? '').replace(/\s+/g, '').toLowerCase();
  return canon(a) === canon(b);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Differences between two sets of app settings: added, changed and removed names. Values stay hidden. */
export function settingDifferences(desired: Readonly<Record<string, string>>, actual: Readonly<Record<string, string>>): Difference[] {
  const names = [...new Set([...Object.keys(desired), ...Object.keys(actual)])].sort();
  return names
    .filter((name) => desired[name] !== actual[name])
    .map((name) => ({ path: name, from: name in actual ? 'set' : 'absent', to: name in desired ? 'set' : 'absent' }));
}

const SYMBOL: Record<Action, string> = { create: '+', update: '~', unchanged: '=' };

/**
 * One change as the lines `--what-if` and the progress output print; `planned` for what a run would
 * do (`--what-if`), not what it did. A setting that is not in the deployment file (added by hand in
 * the portal, say) is named as removed: the app settings are replaced as a whole.
 */
export function describeChange(change: Change, planned = false): string[] {
  const head = `${SYMBOL[change.action]} ${change.resource}${change.action === 'unchanged' ? '' : `: ${change.action === 'create' ? 'create' : 'update'}`}`;
  if (change.action !== 'update') return [head];
  return [
    head,
    ...change.differences.map((d) =>
      change.hideValues
        ? `    ${d.path}: ${d.from === 'absent' ? 'added' : d.to === 'absent' ? `${planned ? 'will be removed' : 'removed'} (not in the deployment file)` : 'changed'}`
        : `    ${d.path}: ${show(d.from)} -> ${show(d.to)}`,
    ),
  ];
}

function show(value: unknown): string {
  if (value === undefined) return '(none)';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** `2 to create, 1 to update, 14 unchanged`. */
export function summarise(changes: readonly Change[]): string {
  const count = (a: Action): number => changes.filter((c) => c.action === a).length;
  return `${count('create')} to create, ${count('update')} to update, ${count('unchanged')} unchanged`;
}
