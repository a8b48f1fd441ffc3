import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { closeTogether, passFailureOn } from './socketPair';

/** A running CONNECT proxy in front of the Key Vault emulator (and, optionally, the ARM emulator). */
export interface VaultProxy {
  /** Value for HTTPS_PROXY, e.g. `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** Closes the proxy and every tunnel. */
  stop(): Promise<void>;
}

/** A tunnel that carries nothing for this long is closed (Key Vault's front end closes idle connections too). */
const TUNNEL_IDLE_MS = 60_000;
const VAULT_HOST_RE = /^[a-z0-9-]+\.vault\.azure\.net$/i;
const MANAGEMENT_HOST = 'management.azure.com';
/** A function app and its SCM site: `<app>.azurewebsites.net`, `<app>.scm.azurewebsites.net`. */
const SITE_HOST_RE = /^[a-z0-9-]+(\.scm)?\.azurewebsites\.net$/i;
const TABLE_HOST_RE = /^[a-z0-9]+\.table\.core\.windows\.net$/i;
const BLOB_HOST_RE = /^[a-z0-9]+\.blob\.core\.windows\.net$/i;
/** Microsoft Graph (the Graph emulator). */
const GRAPH_HOST = 'graph.microsoft.com';

/**
 * Starts an HTTP CONNECT proxy on 127.0.0.1 that tunnels `<name>.vault.azure.net:443` to
 * `127.0.0.1:targetPort`; `management.azure.com:443`, `<app>.azurewebsites.net:443` and
 * `<app>.scm.azurewebsites.net:443` to `127.0.0.1:managementPort` (the ARM emulator, which also
 * serves the SCM and app sites) when that is given; `<account>.table.core.windows.net:443` and
 * `<account>.blob.core.windows.net:443` to `tablePort` / `blobPort` (Azurite over HTTPS, which
 * takes production-style host names) when given; `graph.microsoft.com:443` to `graphPort` (the Graph
 * emulator) when given; and refuses every other target with 403.
 *
 * This lets an unmodified SecretClient use a real-looking vault URI (so its challenge
 * resource check, which compares the URI host with `vault.azure.net`, keeps running) while
 * the TLS session, SNI and Host header still say `<name>.vault.azure.net`. Point clients at
 * it with HTTPS_PROXY and keep local endpoints direct with NO_PROXY=127.0.0.1,localhost.
 * The management SDKs likewise keep their default endpoint `https://management.azure.com`.
 */
export async function startVaultProxy(opts: {
  targetPort?: number;
  managementPort?: number;
  tablePort?: number;
  blobPort?: number;
  graphPort?: number;
  port?: number;
}): Promise<VaultProxy> {
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  const server = createServer((_req, res) => {
    // Only tunnelling is offered; plain-HTTP forwarding would let traffic escape to the internet.
    res.writeHead(405, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('Only CONNECT to the emulated Azure hosts on port 443 is supported by this proxy.\n');
  });

  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    track(client);
    const { host, port } = splitAuthority(req.url ?? '');
    const targetPort = port === '443' ? targetOf(host, opts) : undefined;
    if (targetPort === undefined) {
      client.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    track(upstream);
    // Small request/response exchanges: Nagle would add tens of milliseconds per hop.
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    let established = false;
    upstream.once('connect', () => {
      established = true;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (!established) {
        client.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
        return;
      }
      passFailureOn(client, err);
    });
    closeTogether(client, upstream, TUNNEL_IDLE_MS);
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
      }),
  };
}

function targetOf(
  host: string,
  opts: { targetPort?: number; managementPort?: number; tablePort?: number; blobPort?: number; graphPort?: number },
): number | undefined {
  if (VAULT_HOST_RE.test(host)) return opts.targetPort;
  if (host.toLowerCase() === MANAGEMENT_HOST || SITE_HOST_RE.test(host)) return opts.managementPort;
  if (TABLE_HOST_RE.test(host)) return opts.tablePort;
  if (BLOB_HOST_RE.test(host)) return opts.blobPort;
  if (host.toLowerCase() === GRAPH_HOST) return opts.graphPort;
  return undefined;
}

function splitAuthority(authority: string): { host: string; port: string } {
  const idx = authority.lastIndexOf(':');
  if (idx === -1) return { host: authority, port: '' };
  return { host: authority.slice(0, idx), port: authority.slice(idx + 1) };
}
