/**
 * The code package Flex Consumption runs, built from an allow-list; nothing else in the tree goes in,
 * whatever lies there (`.env`, `.npmrc`, certificates, logs, local state):
 * - `host.json` and `package.json`, at the root;
 * - the built app: the compiled JavaScript under `dist/functions/` (package.json `main`) and
 *   `dist/shared/`, which is all it requires (no source maps or declarations: nothing loads them at
 *   run time; nothing whose name starts with a dot, nor a `node_modules`: the build emits neither);
 * - the production dependencies: the package-lock.json entries marked neither `dev`, `devOptional`
 *   nor `link`, taken from the installed `node_modules` (`npm ci --omit=dev` would keep `devOptional`
 *   ones too, which production needs only optionally: today TypeScript, an optional peer of valibot,
 *   23 MB). Each ships whole but for its TypeScript files (`.ts`, `.mts`, `.cts`, declarations
 *   included), which Node does not run from `node_modules`.
 * `.funcignore` plays no part here (it is for Core Tools' publish, the manual path). No remote build:
 * the package runs as it is.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { zipSync, type Zippable } from 'fflate';

export interface PackageFile {
  /** Relative path with `/` separators, as stored in the zip. */
  readonly name: string;
  readonly absolute: string;
}

export interface CodePackage {
  readonly files: readonly PackageFile[];
  /** SHA-256 over every name and content: equal packages have equal fingerprints. */
  readonly fingerprint: string;
  readonly bytes: number;
}

/** Files taken from the project root, by name. */
const ROOT_FILES = ['host.json', 'package.json'] as const;
/** The app's build output (what `main` loads: functions/ and shared/ compiled), its JavaScript only; dist/ holds local/, bench/ and cli/ too, never taken. */
const APP_DIRS = ['dist/functions', 'dist/shared'] as const;
const JAVASCRIPT = /\.[cm]?js$/;
/** Dependency files Node never loads: TypeScript sources and declarations (it strips no types under node_modules). */
const TYPESCRIPT = /\.[cm]?ts$/;

/** The package's files and fingerprint; the zip is made only when it is to be sent ({@link zipPackage}). */
export function collectPackage(root: string): CodePackage {
  const files: PackageFile[] = [];
  for (const name of ROOT_FILES) {
    const absolute = path.join(root, name);
    if (!existsSync(absolute) || !statSync(absolute).isFile()) {
      throw new Error(`${name} is missing from the project root: the Functions host needs it in the package`);
    }
    files.push({ name, absolute });
  }
  const main = readPackageMain(root);
  if (!APP_DIRS.some((dir) => main.startsWith(`${dir}/`)) || !JAVASCRIPT.test(main)) {
    throw new Error(
      `${main} (package.json "main") is not JavaScript under ${APP_DIRS.join('/ or ')}/, which is all the package takes of the build`,
    );
  }
  for (const dir of APP_DIRS) {
    if (!existsSync(path.join(root, dir))) throw new Error(`${dir} is missing: run npm run build first`);
    const built = (name: string): boolean => !name.startsWith('.') && name !== 'node_modules';
    files.push(...walkFiles(root, dir, (name) => built(name) && JAVASCRIPT.test(name), built));
  }
  if (!files.some((f) => f.name === main)) throw new Error(`${main} (package.json "main") is missing: run npm run build first`);
  files.push(...productionDependencies(root));
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const hash = createHash('sha256');
  let bytes = 0;
  for (const file of files) {
    const content = readFileSync(file.absolute);
    bytes += content.length;
    hash.update(file.name).update('\0').update(createHash('sha256').update(content).digest()).update('\0');
  }
  return { files, fingerprint: hash.digest('hex'), bytes };
}

/** `package.json` `main`, relative (the entry point the Node.js worker loads). */
function readPackageMain(root: string): string {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { main?: string };
  if (!pkg.main) throw new Error('package.json has no "main": the Functions worker would find no functions');
  return path.posix.normalize(pkg.main.replace(/^\.\//, ''));
}

/**
 * Regular files under `dir` (relative to `root`) whose names `takeFile` accepts, in folders whose names
 * `enter` accepts; symbolic links are not followed.
 */
function walkFiles(root: string, dir: string, takeFile: (name: string) => boolean, enter: (name: string) => boolean): PackageFile[] {
  const files: PackageFile[] = [];
  const walk = (current: string): void => {
    for (const item of readdirSync(current, { withFileTypes: true })) {
      const absolute = path.join(current, item.name);
      if (item.isDirectory()) {
        if (enter(item.name)) walk(absolute);
      } else if (item.isFile() && takeFile(item.name)) {
        files.push({ name: path.relative(root, absolute).split(path.sep).join('/'), absolute });
      }
    }
  };
  walk(path.join(root, dir));
  return files;
}

/**
 * Files of every production package in package-lock.json (entries without `dev`, `devOptional` or
 * `link`), each package without its nested `node_modules` (nested packages are entries of their own)
 * and without its TypeScript files.
 */
function productionDependencies(root: string): PackageFile[] {
  const lockPath = path.join(root, 'package-lock.json');
  if (!existsSync(lockPath)) throw new Error('package-lock.json is missing: the production dependencies cannot be told apart');
  const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as {
    packages?: Record<string, { dev?: boolean; devOptional?: boolean; link?: boolean }>;
  };
  const files: PackageFile[] = [];
  for (const [location, entry] of Object.entries(lock.packages ?? {})) {
    if (location === '' || entry.dev || entry.devOptional || entry.link) continue;
    if (!location.startsWith('node_modules/') || location.split('/').includes('..')) {
      throw new Error(`${location} in package-lock.json is not under node_modules: the package takes dependencies from there only`);
    }
    if (!existsSync(path.join(root, location))) {
      throw new Error(`${location} is in package-lock.json but not installed: run npm ci first`);
    }
    files.push(
      ...walkFiles(
        root,
        location,
        (name) => !TYPESCRIPT.test(name),
        (name) => name !== 'node_modules',
      ),
    );
  }
  return files;
}

/** A fixed time for every entry, so the same files make the same zip. */
const ENTRY_TIME = new Date('2000-01-01T00:00:00Z');

/** The package as a zip (deflate), entries in name order with fixed times and their file modes. */
export function zipPackage(pkg: CodePackage): Buffer {
  const tree: Zippable = {};
  for (const file of pkg.files) {
    const executable = (statSync(file.absolute).mode & 0o111) !== 0;
    tree[file.name] = [readFileSync(file.absolute), { mtime: ENTRY_TIME, os: 3, attrs: ((executable ? 0o100755 : 0o100644) << 16) >>> 0 }];
  }
  return Buffer.from(zipSync(tree, { level: 6 }));
}
