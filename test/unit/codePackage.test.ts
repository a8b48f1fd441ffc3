import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { collectPackage, zipPackage } from '../../cli/deploy/codePackage';

/** Writes `text` to `name` under `root`, making its folders. */
function write(root: string, name: string, text: string): void {
  mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
  writeFileSync(path.join(root, name), text);
}

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A small project: sources, build output, a production and a dev dependency, as npm installs them. */
function project(): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'codepackage-'));
  roots.push(root);
  write(root, '.funcignore', '*.ts\n/test/\ndist/local\nlocal.settings.json\n.git*\n');
  write(root, 'package.json', JSON.stringify({ name: 'app', main: 'dist/functions/index.js' }));
  write(root, 'host.json', '{"version":"2.0"}');
  write(root, 'local.settings.json', '{"Values":{"SECRET":"do-not-ship"}}');
  write(root, '.gitignore', 'node_modules\n');
  write(root, 'functions/index.ts', 'export {};');
  write(root, 'dist/functions/index.js', 'exports.x = require("../shared/x");');
  write(root, 'dist/functions/index.js.map', '{"version":3}');
  write(root, 'dist/shared/x.js', 'module.exports = 1;');
  write(root, 'dist/shared/x.d.ts', 'export {};');
  write(root, 'dist/local/host.js', 'local only');
  write(root, 'test/a.test.js', 'test');
  write(root, 'node_modules/prod-a/package.json', '{"name":"prod-a"}');
  write(root, 'node_modules/prod-a/index.js', 'a');
  write(root, 'node_modules/prod-a/index.d.ts', 'export {};');
  write(root, 'node_modules/prod-a/src/index.ts', 'export {};');
  write(root, 'node_modules/prod-a/esm/index.d.mts', 'export {};');
  write(root, 'node_modules/prod-a/README.md', '# prod-a');
  write(root, 'node_modules/prod-a/bin/tool', '#!/bin/sh');
  chmodSync(path.join(root, 'node_modules/prod-a/bin/tool'), 0o755);
  write(root, 'node_modules/prod-a/node_modules/nested-c/index.js', 'c');
  write(root, 'node_modules/dev-b/index.js', 'dev only');
  write(root, 'node_modules/optional-peer-d/index.js', 'a dev dependency that production only names as optional');
  write(root, 'node_modules/.bin/tool', 'link');
  write(
    root,
    'package-lock.json',
    JSON.stringify({
      lockfileVersion: 3,
      packages: {
        '': { name: 'app' },
        'node_modules/prod-a': { version: '1.0.0' },
        'node_modules/prod-a/node_modules/nested-c': { version: '1.0.0' },
        'node_modules/dev-b': { version: '1.0.0', dev: true },
        'node_modules/optional-peer-d': { version: '1.0.0', devOptional: true },
      },
    }),
  );
  return root;
}

/** What the package of {@link project} holds, and of any project with the same build and dependencies. */
const EXPECTED = [
  'dist/functions/index.js',
  'dist/shared/x.js',
  'host.json',
  'node_modules/prod-a/README.md',
  'node_modules/prod-a/bin/tool',
  'node_modules/prod-a/index.js',
  'node_modules/prod-a/node_modules/nested-c/index.js',
  'node_modules/prod-a/package.json',
  'package.json',
];

describe('collectPackage', () => {
  it('takes host.json, package.json, the compiled app and the production dependencies only', () => {
    const pkg = collectPackage(project());
    expect(pkg.files.map((f) => f.name)).toEqual(EXPECTED);
    expect(pkg.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it('ships nothing else planted in the tree, whatever .funcignore says', () => {
    const root = project();
    const planted = [
      '.env',
      '.env.local',
      '.npmrc',
      'deploy.json',
      'sp-cert.pem',
      'npm-debug.log',
      '.azure/config',
      '__azurite_db_table__.json',
      'local.settings.json',
      'src/stray.ts',
      'stray.ts',
      'docs/guide.md',
      'cli/broker.js',
      'bench/run.js',
      'local/start.js',
      'test/unit/x.test.js',
      'dist/cli/broker.js',
      'dist/local/start.js',
      'dist/test/unit/x.test.js',
      'dist/bench/run.js',
      'dist/index.js',
      'dist/.env',
      'node_modules/.package-lock.json',
      'node_modules/unlisted/index.js',
    ];
    for (const name of planted) write(root, name, `planted ${name}`);
    write(root, '.npmrc', '//registry.npmjs.org/:_authToken=npm_secret');
    // Even an empty .funcignore, or none, lets nothing more through.
    write(root, '.funcignore', '');
    const pkg = collectPackage(root);
    expect(pkg.files.map((f) => f.name)).toEqual(EXPECTED);
    const entries = unzipSync(new Uint8Array(zipPackage(pkg)));
    expect(Object.keys(entries).sort()).toEqual(EXPECTED);
  });

  it('takes only the JavaScript of the build folders: no secret, map, declaration or dotfile there ships', () => {
    const root = project();
    for (const name of [
      'dist/functions/.env',
      'dist/functions/.env.js',
      'dist/functions/secrets.json',
      'dist/functions/key.pem',
      'dist/functions/.hidden/a.js',
      'dist/functions/node_modules/x/index.js',
      'dist/shared/.npmrc',
      'dist/shared/settings.json',
    ]) {
      write(root, name, 'SECRET=do-not-ship');
    }
    write(root, 'dist/shared/sub/y.js', 'module.exports = 2;');
    write(root, 'dist/shared/esm.mjs', 'export {};');
    expect(collectPackage(root).files.map((f) => f.name)).toEqual([...EXPECTED, 'dist/shared/esm.mjs', 'dist/shared/sub/y.js'].sort());
  });

  it('has the same fingerprint for the same files and another when one byte changes', () => {
    const root = project();
    const first = collectPackage(root).fingerprint;
    expect(collectPackage(root).fingerprint).toBe(first);
    write(root, '.env', 'not in the package, so not in the fingerprint');
    expect(collectPackage(root).fingerprint).toBe(first);
    writeFileSync(path.join(root, 'dist/functions/index.js'), 'exports.x = 2;');
    expect(collectPackage(root).fingerprint).not.toBe(first);
  });

  it('refuses a project that is not built or not installed', () => {
    const unbuilt = project();
    writeFileSync(path.join(unbuilt, 'package.json'), JSON.stringify({ main: 'dist/functions/missing.js' }));
    expect(() => collectPackage(unbuilt)).toThrow('dist/functions/missing.js (package.json "main") is missing');
    const outside = project();
    writeFileSync(path.join(outside, 'package.json'), JSON.stringify({ main: 'dist/local/host.js' }));
    expect(() => collectPackage(outside)).toThrow(
      'dist/local/host.js (package.json "main") is not JavaScript under dist/functions/ or dist/shared/',
    );
    const noShared = project();
    rmSync(path.join(noShared, 'dist/shared'), { recursive: true });
    expect(() => collectPackage(noShared)).toThrow('dist/shared is missing: run npm run build first');
    const noHost = project();
    rmSync(path.join(noHost, 'host.json'));
    expect(() => collectPackage(noHost)).toThrow('host.json is missing from the project root');
    const noLock = project();
    rmSync(path.join(noLock, 'package-lock.json'));
    expect(() => collectPackage(noLock)).toThrow('package-lock.json is missing');
    const uninstalled = project();
    writeFileSync(
      path.join(uninstalled, 'package-lock.json'),
      JSON.stringify({ packages: { '': {}, 'node_modules/not-there': { version: '1.0.0' } } }),
    );
    expect(() => collectPackage(uninstalled)).toThrow('node_modules/not-there is in package-lock.json but not installed');
    const workspace = project();
    writeFileSync(
      path.join(workspace, 'package-lock.json'),
      JSON.stringify({ packages: { '': {}, 'packages/tool': { version: '1.0.0' } } }),
    );
    expect(() => collectPackage(workspace)).toThrow('packages/tool in package-lock.json is not under node_modules');
  });
});

describe('zipPackage', () => {
  it('holds exactly the package files, byte for byte, keeps the executable bit, and is the same zip every time', () => {
    const root = project();
    const pkg = collectPackage(root);
    const zip = zipPackage(pkg);
    const entries = unzipSync(new Uint8Array(zip));
    expect(Object.keys(entries).sort()).toEqual(pkg.files.map((f) => f.name));
    expect(Buffer.from(entries['dist/functions/index.js'] ?? []).toString()).toBe('exports.x = require("../shared/x");');
    expect(zipPackage(collectPackage(root)).equals(zip)).toBe(true);
    // External attributes of the central directory entry: the Unix mode in the high 16 bits.
    const entry = zip.indexOf(Buffer.from('node_modules/prod-a/bin/tool'), zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])));
    const header = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), entry);
    expect((zip.readUInt32LE(header + 38) >>> 16) & 0o777).toBe(0o755);
  });
});
