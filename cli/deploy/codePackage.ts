/**
 * The code package Flex Consumption runs: what `.funcignore` lets through from the project (the
 * compiled `dist/`, `host.json`, `package.json`), plus the production dependencies: the
 * package-lock.json entries marked neither `dev` nor `devOptional`, taken from the installed
 * `node_modules` (`npm ci --omit=dev` would keep `devOptional` ones too, which production needs only
 * optionally: today TypeScript, an optional peer of valibot, 23 MB). `.funcignore` applies to
 * them as well. No remote build: the package runs as it is.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { zipSync, type Zippable } from 'fflate';
import ignore from 'ignore';

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

/** The package's files and fingerprint; the zip is made only when it is to be sent ({@link zipPackage}). */
export function collectPackage(root: string): CodePackage {
  const funcignore = path.join(root, '.funcignore');
  const rules = ignore().add(existsSync(funcignore) ? readFileSync(funcignore, 'utf8') : '');
  const files: PackageFile[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const absolute = path.join(dir, entry.name);
      const name = path.relative(root, absolute).split(path.sep).join('/');
      if (name === 'node_modules' || name === '.git') continue;
      if (rules.ignores(entry.isDirectory() ? `${name}/` : name)) continue;
      if (entry.isDirectory()) walk(absolute);
      else if (entry.isFile()) files.push({ name, absolute });
    }
  };
  walk(root);
  const main = readPackageMain(root);
  if (!files.some((f) => f.name === 'host.json')) throw new Error('host.json is missing from the package (is it in .funcignore?)');
  if (!files.some((f) => f.name === main)) throw new Error(`${main} (package.json "main") is missing: run npm run build first`);
  // .funcignore applies to the dependencies too, as Core Tools applies it to the whole folder.
  files.push(...productionDependencies(root).filter((f) => !rules.ignores(f.name)));
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
 * Files of every production package in package-lock.json (entries without `dev` or `devOptional`), each
 * package without its nested `node_modules` (nested packages are entries of their own).
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
    const dir = path.join(root, location);
    if (!existsSync(dir)) {
      throw new Error(`${location} is in package-lock.json but not installed: run npm ci first`);
    }
    const walk = (current: string): void => {
      for (const item of readdirSync(current, { withFileTypes: true })) {
        const absolute = path.join(current, item.name);
        if (item.isDirectory()) {
          if (item.name !== 'node_modules') walk(absolute);
        } else if (item.isFile()) {
          files.push({ name: path.relative(root, absolute).split(path.sep).join('/'), absolute });
        }
      }
    };
    walk(dir);
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
