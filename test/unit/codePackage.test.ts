import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { collectPackage, zipPackage } from '../../cli/deploy/codePackage';

/** A small project: sources, build output, a production and a dev dependency, as npm installs them. */
function project(): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'codepackage-'));
  const write = (name: string, text: string): void => {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text);
  };
  write('.funcignore', '*.ts\n/test/\ndist/local\nlocal.settings.json\n.git*\n');
  write('package.json', JSON.stringify({ name: 'app', main: 'dist/functions/index.js' }));
  write('host.json', '{"version":"2.0"}');
  write('local.settings.json', '{"Values":{"SECRET":"do-not-ship"}}');
  write('.gitignore', 'node_modules\n');
  write('functions/index.ts', 'export {};');
  write('dist/functions/index.js', 'exports.x = 1;');
  write('dist/local/host.js', 'local only');
  write('test/a.test.js', 'test');
  write('node_modules/prod-a/package.json', '{"name":"prod-a"}');
  write('node_modules/prod-a/index.d.ts', 'export {};');
  write('node_modules/prod-a/bin/tool', '#!/bin/sh');
  chmodSync(path.join(root, 'node_modules/prod-a/bin/tool'), 0o755);
  write('node_modules/prod-a/node_modules/nested-c/index.js', 'c');
  write('node_modules/dev-b/index.js', 'dev only');
  write('node_modules/optional-peer-d/index.js', 'a dev dependency that production only names as optional');
  write('node_modules/.bin/tool', 'link');
  write(
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

describe('collectPackage', () => {
  it('takes what .funcignore allows and the production dependencies only', () => {
    const pkg = collectPackage(project());
    expect(pkg.files.map((f) => f.name)).toEqual([
      '.funcignore',
      'dist/functions/index.js',
      'host.json',
      'node_modules/prod-a/bin/tool',
      'node_modules/prod-a/node_modules/nested-c/index.js',
      'node_modules/prod-a/package.json',
      'package-lock.json',
      'package.json',
    ]);
    expect(pkg.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it('has the same fingerprint for the same files and another when one byte changes', () => {
    const root = project();
    const first = collectPackage(root).fingerprint;
    expect(collectPackage(root).fingerprint).toBe(first);
    writeFileSync(path.join(root, 'dist/functions/index.js'), 'exports.x = 2;');
    expect(collectPackage(root).fingerprint).not.toBe(first);
  });

  it('refuses a project that is not built or not installed', () => {
    const unbuilt = project();
    writeFileSync(path.join(unbuilt, 'package.json'), JSON.stringify({ main: 'dist/functions/missing.js' }));
    expect(() => collectPackage(unbuilt)).toThrow('dist/functions/missing.js (package.json "main") is missing');
    const uninstalled = project();
    writeFileSync(
      path.join(uninstalled, 'package-lock.json'),
      JSON.stringify({ packages: { '': {}, 'node_modules/not-there': { version: '1.0.0' } } }),
    );
    expect(() => collectPackage(uninstalled)).toThrow('node_modules/not-there is in package-lock.json but not installed');
  });
});

describe('zipPackage', () => {
  it('holds exactly the package files, byte for byte, keeps the executable bit, and is the same zip every time', () => {
    const root = project();
    const pkg = collectPackage(root);
    const zip = zipPackage(pkg);
    const entries = unzipSync(new Uint8Array(zip));
    expect(Object.keys(entries).sort()).toEqual(pkg.files.map((f) => f.name));
    expect(Buffer.from(entries['dist/functions/index.js'] ?? []).toString()).toBe('exports.x = 1;');
    expect(zipPackage(collectPackage(root)).equals(zip)).toBe(true);
    // External attributes of the central directory entry: the Unix mode in the high 16 bits.
    const entry = zip.indexOf(Buffer.from('node_modules/prod-a/bin/tool'), zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])));
    const header = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), entry);
    expect((zip.readUInt32LE(header + 38) >>> 16) & 0o777).toBe(0o755);
  });
});
