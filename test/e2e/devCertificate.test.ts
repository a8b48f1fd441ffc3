/**
 * The emulators' dev certificate: which names it covers, and that a certificate left in a state
 * directory by an older version, without some of them, is replaced on the next start.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generate } from 'selfsigned';
import { createDevCertificate } from '../../local/emulators/devCertificate';

/** A state directory holding a still-valid certificate of an older version, covering only `dnsNames`. */
async function stateDirWithOldCertificate(dnsNames: string[]): Promise<{ dir: string; certPem: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'arm-cert-'));
  const old = await generate([{ name: 'commonName', value: 'Local Azure emulator dev CA' }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 30 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      {
        name: 'subjectAltName',
        altNames: [...dnsNames.map((value) => ({ type: 2 as const, value })), { type: 7, ip: '127.0.0.1' }],
      },
    ],
  });
  writeFileSync(path.join(dir, 'dev-ca.pem'), old.cert);
  writeFileSync(path.join(dir, 'dev-ca.key'), old.private);
  return { dir, certPem: old.cert };
}

describe('dev certificate', () => {
  it('regenerates a still-valid certificate from before management.azure.com was covered', async () => {
    const { dir, certPem } = await stateDirWithOldCertificate(['*.vault.azure.net', 'localhost']);
    try {
      const fresh = await createDevCertificate(dir);
      expect(fresh.certPem).not.toBe(certPem);
      expect(new X509Certificate(fresh.certPem).checkHost('management.azure.com')).toBe('management.azure.com');
      // checkHost answers with the SAN entry that matched.
      expect(new X509Certificate(fresh.certPem).checkHost('contoso.vault.azure.net')).toBe('*.vault.azure.net');
      // Once it covers every name, the next start reuses it.
      expect((await createDevCertificate(dir)).certPem).toBe(fresh.certPem);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('regenerates a certificate that covers the vaults and ARM but not the sites and storage hosts', async () => {
    const { dir } = await stateDirWithOldCertificate(['*.vault.azure.net', 'management.azure.com', 'localhost']);
    try {
      const fresh = new X509Certificate((await createDevCertificate(dir)).certPem);
      expect(fresh.checkHost('func-broker.azurewebsites.net')).toBe('*.azurewebsites.net');
      expect(fresh.checkHost('func-broker.scm.azurewebsites.net')).toBe('*.scm.azurewebsites.net');
      expect(fresh.checkHost('stbroker.table.core.windows.net')).toBe('*.table.core.windows.net');
      expect(fresh.checkHost('stbroker.blob.core.windows.net')).toBe('*.blob.core.windows.net');
      expect(fresh.checkHost('management.azure.com')).toBe('management.azure.com');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
