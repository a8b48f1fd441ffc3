// @ts-check
/**
 * The build, and the check that lets the operator and local commands skip it (plain JavaScript, so
 * it needs no compiling itself):
 *
 *   node local/build.mjs             always compiles (npm run build, npm test)
 *   node local/build.mjs --if-stale  compiles only when dist/ is not the build of the sources as they are
 *
 * dist/ is current when the fingerprint stamped by the last successful build equals the fingerprint
 * of the sources now: the path and SHA-256 of every file under the compiled folders, plus the
 * tsconfig files and the package files (a changed, new, deleted or renamed file changes it, whatever
 * its mtime). The fingerprint is taken before tsc runs and stamped only when tsc succeeds, so a file
 * edited during a build, or a failed build, means the next run compiles again.
 *
 * After compiling, output whose source is gone (a deleted or renamed .ts) is removed from dist/:
 * tsc never deletes, and a stale dist/shared/x.js would be loaded instead of a new x/index.js and
 * would ship in the code package.
 */
import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The folders tsconfig.build.json compiles, each to dist/<folder>. */
const SOURCE_DIRS = ['functions', 'shared', 'cli', 'local', 'bench'];
/** Written there by runs, never read by the build. */
const NOT_SOURCES = new Set(['bench/results']);
const ROOT_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json'];
const DIST = path.join(ROOT, 'dist');
const STAMP = path.join(DIST, '.build-fingerprint');

/**
 * Every file under `dir` (relative to ROOT, `/`-separated), sorted.
 * @param {string} dir
 * @returns {string[]}
 */
function filesUnder(dir) {
  /** @type {string[]} */
  const out = [];
  /** @param {string} rel */
  const walk = (rel) => {
    if (NOT_SOURCES.has(rel)) return;
    let entries;
    try {
      entries = readdirSync(path.join(ROOT, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const child = `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) out.push(child);
    }
  };
  walk(dir);
  return out.sort();
}

function fingerprint() {
  const hash = createHash('sha256');
  for (const file of [...ROOT_FILES, ...SOURCE_DIRS.flatMap(filesUnder)]) {
    let content;
    try {
      content = readFileSync(path.join(ROOT, file));
    } catch {
      content = Buffer.from('(missing)');
    }
    hash.update(`${file}\0${createHash('sha256').update(content).digest('hex')}\n`);
  }
  return hash.digest('hex');
}

function stamped() {
  try {
    return readFileSync(STAMP, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Whether the source a file of dist/ was compiled or copied from is still there: dist/a/b.js and
 * .js.map come from a/b.ts, anything else (a .json) from itself.
 * @param {string} relInDist
 */
function sourceExists(relInDist) {
  const plain = relInDist.replace(/\.js\.map$|\.js$|\.d\.ts$/, '');
  if (plain !== relInDist && ['.ts', '.mts', '.cts'].some((ext) => existsSync(path.join(ROOT, plain + ext)))) return true;
  return existsSync(path.join(ROOT, relInDist));
}

/** Removes what dist/ holds of sources that are gone, and the folders that leaves empty. */
function pruneOrphans() {
  /** @type {string[]} */
  const removed = [];
  /** @param {string} rel */
  const walk = (rel) => {
    let entries;
    try {
      entries = readdirSync(path.join(DIST, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const child = `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        walk(child);
        if (readdirSync(path.join(DIST, child)).length === 0) rmdirSync(path.join(DIST, child));
      } else if (!sourceExists(child)) {
        rmSync(path.join(DIST, child), { force: true });
        removed.push(`dist/${child}`);
      }
    }
  };
  for (const dir of SOURCE_DIRS) walk(dir);
  return removed;
}

/**
 * Compiles, prunes, and stamps `current` when tsc succeeded; the exit code.
 * @param {string} current the sources' fingerprint, taken before compiling
 */
function build(current) {
  rmSync(STAMP, { force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) return result.status ?? 1;
  const removed = pruneOrphans();
  if (removed.length > 0) process.stderr.write(`Removed ${removed.length} compiled file(s) whose source is gone: ${removed.join(', ')}\n`);
  writeFileSync(STAMP, `${current}\n`);
  return 0;
}

const args = process.argv.slice(2);
if (args.some((a) => a !== '--if-stale')) {
  process.stderr.write(`Unknown argument "${args.find((a) => a !== '--if-stale')}": expected nothing or --if-stale.\n`);
  process.exit(2);
}
const current = fingerprint();
if (args.includes('--if-stale')) {
  if (stamped() === current) process.exit(0);
  process.stderr.write('dist/ is not the build of the current sources: compiling (tsc) first.\n');
}
process.exit(build(current));
