import dns from 'node:dns';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { closeTogether, passFailureOn } from './socketPair';

/**
 * Direct connections from this process to the Key Vault emulator, as in Azure: no proxy, one
 * kept-alive TLS connection (or a few, under concurrency) per SecretClient.
 *
 * Through the CONNECT proxy the SDK's proxy agent opens a new tunnel and a new TLS handshake for
 * every request, which caps one process at a few hundred vault requests per second. In direct
 * mode, in this process only:
 * - `dns.lookup` answers `127.0.0.1` for `<name>.vault.azure.net` (what `net.connect`, and so
 *   `tls.connect` and the SDK's https agent, call when no `lookup` option is given);
 * - a plain TCP forwarder on `127.0.0.1:443` passes each connection on to the emulator's port, so
 *   the TLS session, SNI and Host header still say `<name>.vault.azure.net` (the dev certificate
 *   covers `*.vault.azure.net`) and the SDK's challenge-resource check keeps running;
 * - `.vault.azure.net` is added to NO_PROXY (core-rest-pipeline matches exact hosts or `.suffix`).
 *   The SDK reads NO_PROXY once per process, when it builds its first pipeline: call this before
 *   any SDK client is created, and check `accepted` after a first request.
 *
 * Binding port 443 needs root or CAP_NET_BIND_SERVICE (or a low `ip_unprivileged_port_start`);
 * when it cannot be bound this rejects and nothing is changed.
 */
export interface DirectVault {
  /** Connections the forwarder has accepted so far. */
  readonly accepted: number;
  /** Connections open at the forwarder now. */
  readonly open: number;
  /** Stops the forwarder and puts `dns.lookup` and NO_PROXY back. */
  stop(): Promise<void>;
}

const VAULT_HOST_RE = /^[a-z0-9-]+\.vault\.azure\.net\.?$/i;
const VAULT_SUFFIX = '.vault.azure.net';
/** A connection that carries nothing for this long is closed; the emulator closes idle ones after 30 s anyway. */
const IDLE_MS = 120_000;

export async function useDirectVaultConnections(opts: { targetPort: number; port?: number }): Promise<DirectVault> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  const server = createServer((client) => {
    accepted++;
    track(client);
    const upstream = connect({ host: '127.0.0.1', port: opts.targetPort });
    track(upstream);
    // Small request/response exchanges: Nagle would add tens of milliseconds per hop.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on('error', (err: NodeJS.ErrnoException) => passFailureOn(client, err));
    closeTogether(client, upstream, IDLE_MS);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 443, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const originalLookup = dns.lookup;
  // dns.lookup has several overloads (options or family, `all`); answer vault hosts in each form.
  const lookup = function (hostname: string, options: unknown, callback?: unknown): void {
    const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
    if (typeof hostname !== 'string' || !VAULT_HOST_RE.test(hostname) || typeof cb !== 'function') {
      return (originalLookup as (...args: unknown[]) => void).call(dns, hostname, options, callback);
    }
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true;
    process.nextTick(() => (all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)));
  };
  (dns as { lookup: unknown }).lookup = lookup;

  const savedNoProxy = { NO_PROXY: process.env.NO_PROXY, no_proxy: process.env.no_proxy };
  const current = (process.env.NO_PROXY ?? process.env.no_proxy ?? '').trim();
  process.env.NO_PROXY = current ? `${current},${VAULT_SUFFIX}` : VAULT_SUFFIX;
  delete process.env.no_proxy;

  return {
    get accepted() {
      return accepted;
    },
    get open() {
      // Each forwarded connection is two sockets, the client's and the upstream one.
      return [...sockets].filter((s) => s.localPort === port).length;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (dns.lookup === (lookup as unknown)) (dns as { lookup: unknown }).lookup = originalLookup;
        for (const [k, v] of Object.entries(savedNoProxy)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
