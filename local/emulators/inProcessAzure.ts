import tls from 'node:tls';
import type { LocalAzure } from './localAzure';

/** Everything that could steer DefaultAzureCredential or the SDK's proxy away from the emulators. */
export const AZURE_STEERING_ENV_KEYS = [
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'IDENTITY_SERVER_THUMBPRINT',
  'IMDS_ENDPOINT',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'ALL_PROXY',
  'all_proxy',
  'NO_PROXY',
  'no_proxy',
  'AZURE_CLIENT_ID',
  'AZURE_TENANT_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_USERNAME',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_TOKEN_CREDENTIALS',
];

/**
 * Points the real SDK clients built in this process (a jest test, a benchmark) at the emulators, through the same
 * standard settings a host process gets. NODE_EXTRA_CA_CERTS is read only at process start;
 * `tls.setDefaultCACertificates` is its in-process equivalent.
 * @returns a function that puts the CA list and the environment back.
 */
export function useLocalAzureInProcess(azure: LocalAzure): () => void {
  const savedCAs = tls.getCACertificates('default');
  tls.setDefaultCACertificates([...savedCAs, azure.certPem]);
  const savedEnv = Object.fromEntries(AZURE_STEERING_ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of AZURE_STEERING_ENV_KEYS) delete process.env[k];
  for (const k of ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'HTTPS_PROXY', 'NO_PROXY'] as const) {
    process.env[k] = azure.env[k];
  }
  return () => {
    tls.setDefaultCACertificates(savedCAs);
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
