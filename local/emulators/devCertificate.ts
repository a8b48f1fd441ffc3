import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';

/** A development TLS certificate and where its PEM lives on disk. */
export interface DevCertificate {
  /** PEM of the self-signed certificate (also the trust anchor to install). */
  certPem: string;
  /** PEM of the matching RSA private key. */
  keyPem: string;
  /** Absolute-or-relative path of `dev-ca.pem`, suitable for NODE_EXTRA_CA_CERTS. */
  certPath: string;
  /** Path of `dev-ca.key`, the private key's PEM (for servers that read their key from a file). */
  keyPath: string;
}

const CERT_FILE = 'dev-ca.pem';
const KEY_FILE = 'dev-ca.key';
const LOCK_FILE = 'dev-ca.lock';
/** The Azure host names the certificate covers (besides localhost and 127.0.0.1). */
const DNS_NAMES = [
  '*.vault.azure.net',
  'management.azure.com',
  '*.azurewebsites.net',
  '*.scm.azurewebsites.net',
  '*.blob.core.windows.net',
  '*.table.core.windows.net',
  '*.queue.core.windows.net',
  'graph.microsoft.com',
];
/** Regenerate a little before expiry so a long test run never straddles it. */
const MIN_REMAINING_MS = 24 * 60 * 60 * 1000;
/** A lock older than this belongs to a crashed process. */
const STALE_LOCK_MS = 30_000;

/**
 * Creates (or reuses) one self-signed certificate that the local emulators serve
 * for `*.vault.azure.net`, `management.azure.com`, the function app and SCM sites
 * (`*.azurewebsites.net`, `*.scm.azurewebsites.net`), storage's production host names
 * (`*.blob.core.windows.net`, `*.table.core.windows.net`, `*.queue.core.windows.net`),
 * Microsoft Graph (`graph.microsoft.com`, the Graph emulator), `localhost` and `127.0.0.1`.
 *
 * The certificate is written to `${dir}/dev-ca.pem` (key: `${dir}/dev-ca.key`).
 * An existing pair is reused while it is valid for at least another day, covers
 * the required names and matches its key; otherwise a new pair replaces it (so a
 * certificate from before a name was added is regenerated on the next start).
 * A lock file serialises concurrent callers (e.g. parallel jest workers) so they
 * all end up with the pair that is on disk.
 */
export async function createDevCertificate(dir: string): Promise<DevCertificate> {
  await mkdir(dir, { recursive: true });
  const certPath = join(dir, CERT_FILE);
  const keyPath = join(dir, KEY_FILE);
  const release = await acquireLock(join(dir, LOCK_FILE));
  try {
    const existing = await readUsablePair(certPath, keyPath);
    if (existing) return { ...existing, certPath, keyPath };
    const fresh = await generatePair();
    // Write-then-rename so a reader never sees a half-written PEM.
    await writeAtomic(keyPath, fresh.keyPem, 0o600);
    await writeAtomic(certPath, fresh.certPem, 0o644);
    return { ...fresh, certPath, keyPath };
  } finally {
    await release();
  }
}

async function generatePair(): Promise<{ certPem: string; keyPem: string }> {
  const notBeforeDate = new Date(Date.now() - 60_000); // tolerate small clock skew
  const notAfterDate = new Date(notBeforeDate.getTime() + 365 * 24 * 60 * 60 * 1000);
  const pems = await generate([{ name: 'commonName', value: 'Local Azure emulator dev CA' }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      // CA:true lets the same PEM act as the trust anchor and the server certificate.
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          ...DNS_NAMES.map((value) => ({ type: 2 as const, value })),
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  return { certPem: pems.cert, keyPem: pems.private };
}

async function readUsablePair(certPath: string, keyPath: string): Promise<{ certPem: string; keyPem: string } | undefined> {
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch {
    return undefined;
  }
  try {
    const cert = new X509Certificate(certPem);
    const remaining = new Date(cert.validTo).getTime() - Date.now();
    const coversNames =
      DNS_NAMES.every((name) => cert.checkHost(name.replace(/^\*\./, 'contoso.')) !== undefined) &&
      cert.checkHost('localhost') !== undefined &&
      cert.checkIP('127.0.0.1') !== undefined;
    if (remaining > MIN_REMAINING_MS && coversNames && cert.checkPrivateKey(createPrivateKey(keyPem))) {
      return { certPem, keyPem };
    }
  } catch {
    // Corrupt or foreign files: fall through and regenerate.
  }
  return undefined;
}

async function writeAtomic(path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode });
  await rename(tmp, path);
}

async function acquireLock(lockPath: string): Promise<() => Promise<void>> {
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.close();
      return () => rm(lockPath, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const info = await stat(lockPath).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > STALE_LOCK_MS) {
        await rm(lockPath, { force: true });
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
