/**
 * `npm run bench:scale`: the fleet simulation. N broker instances run in this process against the
 * Key Vault emulator, which enforces Key Vault's limit (4,000 requests per 10 s per vault, 429
 * `Throttled` with and without `Retry-After`), and one Azurite. Each instance is the production
 * runtime (`createRuntime`): its own cache, resolver, coherence poller, SecretClient and
 * DefaultAzureCredential (its own managed-identity token cache). Requests go through each
 * runtime's resolver (`runtime.resolver.resolve(caller, ref, audit)`): the production path minus
 * HTTP, authentication and the audit log. Prints a table and writes bench/results/scale.json.
 *
 * Configurations: memory cache only; with the shared cache (`CACHE_SHARED=table`,
 * `CACHE_SHARED_KEY_SECRET`). Where the settings do not accept the shared cache yet, its rows read
 * "not available".
 *
 * Scenarios (sizes overridable with FLEET_* variables, for a quick run):
 * - steady state: instances x secrets, TTL 1 h, a Zipf request mix, on a simulated clock advanced
 *   in 10 s steps (the caches, the resolver and the emulator's limit all read it), so an hour and
 *   a quarter runs in seconds; vault requests per simulated 10 s after warm-up, as a share of 4,000.
 * - cold burst: instances x secrets requested all at once, on real time.
 * - one rotation: every instance holds a secret, a new version is published through cache
 *   coherence (as the event handler does); vault reads until all serve it, and how long that took.
 * - under faults: mixed traffic while the emulator answers 5 % 429 and resets 1 % of connections.
 *
 * Connections (FLEET_CONNECTION): `direct` (the default) has each SecretClient talk TLS straight to
 * the emulator and keep its connection alive, as in Azure: `*.vault.azure.net` resolves to
 * 127.0.0.1 in this process and a TCP forwarder on 127.0.0.1:443 passes connections on to the
 * emulator (local/emulators/directVault.ts). `proxy` goes through the CONNECT proxy, as the tests
 * and `npm start` do, where every request opens a new tunnel and TLS handshake, which caps this
 * process at about 150 vault requests per second. When port 443 cannot be bound the run falls back
 * to the proxy; the mode that ran is printed and written to scale.json.
 */
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAzurite } from '../local/emulators/azurite';
import type { Azurite } from '../local/emulators/azurite';
import { useDirectVaultConnections } from '../local/emulators/directVault';
import type { DirectVault } from '../local/emulators/directVault';
import { useLocalAzureInProcess } from '../local/emulators/inProcessAzure';
import { startLocalAzure } from '../local/emulators/localAzure';
import type { LocalAzure } from '../local/emulators/localAzure';
import type { AuditRecorder } from '../shared/audit/auditTrail';
import type { Caller } from '../shared/callers/accessPolicy';
import type { AppConfig } from '../shared/config';
import { loadConfig } from '../shared/config';
import { BrokerError, ConfigError } from '../shared/errors';
import { handleSecretEvent } from '../shared/events/handleSecretEvent';
import type { Runtime } from '../shared/runtime';
import { createRuntime } from '../shared/runtime';

const ROOT = path.resolve(__dirname, '../..');
const VAULT = 'fleet-vault';
const KEY = 'fleet-key';
const LIMIT = { requests: 4_000, windowMs: 10_000 };
const DATA_KEY_SECRET = 'fleet-cache-data-key';

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const STEADY_INSTANCES = num('FLEET_STEADY_INSTANCES', 100);
const STEADY_SECRETS = num('FLEET_STEADY_SECRETS', 1_000);
/** Requests each instance serves per simulated 10 s. */
const STEADY_REQUESTS_PER_STEP = num('FLEET_STEADY_REQUESTS_PER_STEP', 10);
const STEADY_MINUTES = num('FLEET_STEADY_MINUTES', 75);
const STEADY_WARMUP_MINUTES = 10;
const BURST_INSTANCES = num('FLEET_BURST_INSTANCES', 200);
const BURST_SECRETS = num('FLEET_BURST_SECRETS', 50);
const ROTATION_INSTANCES = num('FLEET_ROTATION_INSTANCES', 100);
const FAULT_INSTANCES = num('FLEET_FAULT_INSTANCES', 20);
const FAULT_SECONDS = num('FLEET_FAULT_SECONDS', 60);
/** Rotations during the steady state, evenly spread after the warm-up, each of a popular secret. */
const STEADY_ROTATIONS = num('FLEET_STEADY_ROTATIONS', 4);
/** `direct` (default) or `proxy`: how the SecretClients reach the emulator. */
const CONNECTION = process.env.FLEET_CONNECTION ?? 'direct';
/** Sequential reads by one runtime before the run, to check that its connection is kept alive. */
const PROBE_READS = 100;
/** Every wait for the fleet is bounded by this. */
const MAX_WAIT_MS = 60_000;

interface Row {
  readonly config: string;
  readonly figure: string;
  readonly measured: string;
  readonly goal: string;
  readonly met: boolean | null;
}

const NO_AUDIT: AuditRecorder = { record: () => undefined };

/** A fleet of runtimes on one clock. */
interface Fleet {
  readonly runtimes: Runtime[];
  readonly caller: Caller;
  dispose(): void;
}

function baseEnv(azure: LocalAzure, azurite: Azurite, ttlSeconds: number): Record<string, string> {
  return {
    KEY_VAULT_URI: azure.keyVault.vaultUri(VAULT),
    ACCESS_POLICY: JSON.stringify({
      callers: [
        {
          name: 'fleet',
          identities: [{ apiKeySha256: createHash('sha256').update(KEY).digest('hex') }],
          allow: ['*'],
          rateLimit: { requestsPerMinute: 1_000_000 },
        },
      ],
    }),
    AzureWebJobsStorage: azurite.connectionString,
    CACHE_TTL_SECONDS: String(ttlSeconds),
    CACHE_MAX_ENTRIES: String(Math.max(STEADY_SECRETS, BURST_SECRETS) * 2),
  };
}

/** The settings of a configuration, or why it is not available. */
function configFor(shared: boolean, env: Record<string, string>): AppConfig | string {
  const all = shared ? { ...env, CACHE_SHARED: 'table', CACHE_SHARED_KEY_SECRET: DATA_KEY_SECRET } : env;
  try {
    const config = loadConfig(all);
    // Settings that do not know the shared cache ignore it: then it is not there either.
    if (shared && !JSON.stringify(config).includes(DATA_KEY_SECRET)) return 'not available (CACHE_SHARED not read by loadConfig)';
    return config;
  } catch (err: unknown) {
    if (err instanceof ConfigError) return `not available (${err.message})`;
    throw err;
  }
}

function startFleet(config: AppConfig, count: number, label: string, now?: () => number): Fleet {
  const runtimes = Array.from({ length: count }, (_, i) => createRuntime(config, { instanceId: `${label}-${i}`, ...(now ? { now } : {}) }));
  const caller = runtimes[0]?.policy.findByApiKey(KEY);
  if (!caller) throw new Error('the fleet caller is not in the policy');
  return { runtimes, caller, dispose: () => runtimes.forEach((r) => r.dispose()) };
}

/** Outcome of one resolve: `200`, or the broker's status and code. */
async function resolveOnce(runtime: Runtime, caller: Caller, name: string): Promise<{ outcome: string; version?: string; ms: number }> {
  const started = performance.now();
  try {
    const r = await runtime.resolver.resolve(caller, { name }, NO_AUDIT);
    return { outcome: '200', version: r.secret.version ?? '', ms: performance.now() - started };
  } catch (err: unknown) {
    const outcome = err instanceof BrokerError ? `${err.status} ${err.code}` : `500 ${err instanceof Error ? err.name : 'error'}`;
    return { outcome, ms: performance.now() - started };
  }
}

/** A Zipf(1) pick among n names: a few secrets are read by everyone, most rarely. */
function zipf(n: number, random: () => number): () => number {
  const weights = Array.from({ length: n }, (_, i) => 1 / (i + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative: number[] = [];
  let sum = 0;
  for (const w of weights) cumulative.push((sum += w / total));
  return () => {
    const x = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] ?? 1) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** A seeded random source, so every run draws the same mix. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function tally(outcomes: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) out[o] = (out[o] ?? 0) + 1;
  return out;
}

/** Open file descriptors of this process (Linux), or undefined where /proc is not there. */
function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

function vaultGets(azure: LocalAzure): number {
  return azure.keyVault.requestCount({ vault: VAULT });
}

/**
 * What the `secretEvents` function does when Key Vault reports a new version: `handleSecretEvent`
 * on the instance the event lands on (shared row deleted first where there is one, own cache
 * dropped, the rotation published through cache coherence for the others).
 */
async function deliverNewVersion(runtime: Runtime, azure: LocalAzure, name: string, version: string, at: number): Promise<void> {
  const event = {
    id: `${name}-${version}`,
    topic: azure.keyVault.resourceId(VAULT),
    subject: name,
    eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
    eventTime: new Date(at).toISOString(),
    data: { VaultName: VAULT, ObjectType: 'Secret', ObjectName: name, Version: version, NBF: null, EXP: null },
    dataVersion: '1',
    metadataVersion: '1',
  };
  const result = await handleSecretEvent(event, runtime.events(), () => undefined);
  if (result.outcome !== 'handled') throw new Error(`the event for ${name} was ${result.outcome}`);
}

async function steadyState(label: string, config: AppConfig, azure: LocalAzure): Promise<Row[]> {
  let simulated = Date.now();
  const now = (): number => simulated;
  const fleet = startFleet(config, STEADY_INSTANCES, `steady-${label}`, now);
  const pick = zipf(STEADY_SECRETS, seeded(42));
  const errors: string[] = [];
  const perStep: number[] = [];
  const started = performance.now();
  const steps = (STEADY_MINUTES * 60) / 10;
  const warmupSteps = (STEADY_WARMUP_MINUTES * 60) / 10;
  // Rotations by event: which step, which secret (popular ones, read by every instance).
  const rotationSteps = new Map<number, string>();
  for (let r = 0; r < STEADY_ROTATIONS; r++) {
    rotationSteps.set(warmupSteps + Math.floor(((r + 0.5) * (steps - warmupSteps)) / STEADY_ROTATIONS), `s-${r * 3}`);
  }
  /** The rotation the fleet has been told of in the previous step: every read of it must now be the new version. */
  let rotated: { name: string; version: string } | undefined;
  let staleAfterEvent = 0;
  let rotations = 0;
  try {
    azure.keyVault.resetCounts();
    for (let step = 0; step < steps; step++) {
      // The limit applies from the end of the warm-up, on the simulated clock.
      if (step === warmupSteps) azure.keyVault.setRateLimit({ ...LIMIT, retryAfter: 'sometimes', now });
      const before = vaultGets(azure);
      const rotating = rotationSteps.get(step);
      if (rotating) {
        const { version } = azure.keyVault.setSecret(VAULT, rotating, `value-${rotating}-${step}`);
        await deliverNewVersion(fleet.runtimes[step % fleet.runtimes.length]!, azure, rotating, version, simulated);
        // The coherence pollers run every 5 s of real time, which is far less than a simulated
        // step here: each instance polls once now, as its poller would within the step.
        await Promise.all(fleet.runtimes.map((runtime) => runtime.pollCoherence()));
        rotated = { name: rotating, version };
        rotations++;
      }
      await Promise.all(
        fleet.runtimes.map(async (runtime) => {
          for (let i = 0; i < STEADY_REQUESTS_PER_STEP; i++) {
            // Every instance reads the rotated secret once in the step after the event.
            const name = rotated && i === 0 ? rotated.name : `s-${pick()}`;
            const { outcome, version } = await resolveOnce(runtime, fleet.caller, name);
            if (outcome !== '200') errors.push(outcome);
            else if (rotated && name === rotated.name && version !== rotated.version) staleAfterEvent++;
          }
        }),
      );
      if (!rotating) rotated = undefined;
      if (step >= warmupSteps) perStep.push(vaultGets(azure) - before);
      simulated += 10_000;
      if (performance.now() - started > 10 * MAX_WAIT_MS) throw new Error('steady state took longer than 10 minutes');
    }
  } finally {
    azure.keyVault.setRateLimit(null);
    fleet.dispose();
  }
  const mean = perStep.reduce((a, b) => a + b, 0) / Math.max(perStep.length, 1);
  const peak = Math.max(0, ...perStep);
  return [
    {
      config: label,
      figure: `steady state, ${STEADY_INSTANCES} instances x ${STEADY_SECRETS} secrets, TTL 1 h, ${STEADY_REQUESTS_PER_STEP} req/instance/10 s (Zipf), minutes ${STEADY_WARMUP_MINUTES}-${STEADY_MINUTES}: vault requests per 10 s, mean / peak, share of 4,000`,
      measured: `${mean.toFixed(0)} / ${peak} (${((100 * mean) / LIMIT.requests).toFixed(1)} % / ${((100 * peak) / LIMIT.requests).toFixed(1)} %)`,
      goal: '< 10 %',
      met: mean < LIMIT.requests * 0.1,
    },
    {
      config: label,
      figure: `steady state: ${rotations} rotations by event (handleSecretEvent on one instance, coherence to the others): reads of the rotated secret in the next step that got the old version`,
      measured: String(staleAfterEvent),
      goal: '0',
      met: rotations === STEADY_ROTATIONS && staleAfterEvent === 0,
    },
    {
      config: label,
      figure: 'steady state: callers answered other than 200',
      measured: errors.length === 0 ? '0' : JSON.stringify(tally(errors)),
      goal: '0',
      met: errors.length === 0,
    },
  ];
}

async function coldBurst(label: string, config: AppConfig, azure: LocalAzure): Promise<Row[]> {
  const fleet = startFleet(config, BURST_INSTANCES, `burst-${label}`);
  try {
    azure.keyVault.resetCounts();
    azure.keyVault.setRateLimit({ ...LIMIT, retryAfter: 'sometimes' });
    const results = await Promise.all(
      fleet.runtimes.flatMap((runtime) => Array.from({ length: BURST_SECRETS }, (_, i) => resolveOnce(runtime, fleet.caller, `b-${i}`))),
    );
    const failed = results.filter((r) => r.outcome !== '200').map((r) => r.outcome);
    const ms = results.map((r) => r.ms);
    const p99 = percentile(ms, 99);
    const injected = azure.keyVault.injectedCounts();
    return [
      {
        config: label,
        figure: `cold burst, ${BURST_INSTANCES} instances x ${BURST_SECRETS} secrets at once: callers' 429 / 5xx`,
        measured: failed.length === 0 ? '0' : JSON.stringify(tally(failed)),
        goal: '0',
        met: failed.length === 0,
      },
      {
        config: label,
        figure: 'cold burst: latency p50 / p99, ms',
        measured: `${percentile(ms, 50).toFixed(0)} / ${p99.toFixed(0)}`,
        goal: 'p99 < 5000 (shared cache)',
        met: label === 'shared cache' ? p99 < 5_000 : null,
      },
      {
        config: label,
        figure: 'cold burst: vault requests / vault 429s',
        measured: `${vaultGets(azure)} / ${injected.throttledByLimit}`,
        goal: 'figure',
        met: null,
      },
    ];
  } finally {
    azure.keyVault.setRateLimit(null);
    fleet.dispose();
  }
}

async function rotation(label: string, config: AppConfig, azure: LocalAzure): Promise<Row[]> {
  const name = `rotated-${label.replace(/\W/g, '')}`;
  azure.keyVault.setSecret(VAULT, name, 'old');
  const fleet = startFleet(config, ROTATION_INSTANCES, `rotation-${label}`);
  try {
    for (const runtime of fleet.runtimes) await resolveOnce(runtime, fleet.caller, name);
    const { version } = azure.keyVault.setSecret(VAULT, name, 'new');
    azure.keyVault.resetCounts();
    const started = performance.now();
    // The event lands on one instance; the others learn of it through their coherence pollers
    // (every 5 s, real time), as in Azure.
    await deliverNewVersion(fleet.runtimes[0]!, azure, name, version, Date.now());
    const serving = new Set<number>();
    while (serving.size < fleet.runtimes.length && performance.now() - started < MAX_WAIT_MS) {
      await Promise.all(
        fleet.runtimes.map(async (runtime, i) => {
          if (serving.has(i)) return;
          if ((await resolveOnce(runtime, fleet.caller, name)).version === version) serving.add(i);
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    const reads = azure.keyVault.requestCount({ vault: VAULT, method: 'GET', path: `/secrets/${name}` });
    const shared = label === 'shared cache';
    return [
      {
        config: label,
        figure: `one rotation, ${ROTATION_INSTANCES} instances: vault reads of the secret`,
        measured: String(reads),
        goal: shared ? '~1' : `${ROTATION_INSTANCES}`,
        met: shared ? reads <= 2 : reads <= ROTATION_INSTANCES,
      },
      {
        config: label,
        figure: 'one rotation: seconds until every instance serves the new version',
        measured: serving.size < fleet.runtimes.length ? `> ${MAX_WAIT_MS / 1000} (${serving.size} serve it)` : seconds.toFixed(1),
        goal: '<= 30 (CONTRACT)',
        met: serving.size === fleet.runtimes.length && seconds <= 30,
      },
    ];
  } finally {
    fleet.dispose();
  }
}

async function underFaults(label: string, config: AppConfig, azure: LocalAzure): Promise<Row[]> {
  // A short TTL, so the vault keeps being asked while the faults run.
  const fleet = startFleet(config, FAULT_INSTANCES, `faults-${label}`);
  const pick = zipf(200, seeded(7));
  const outcomes: string[] = [];
  let heapAt10: number | undefined;
  const heapStart = process.memoryUsage().heapUsed;
  try {
    azure.keyVault.resetCounts();
    azure.keyVault.setRateLimit({ ...LIMIT, retryAfter: 'sometimes' });
    azure.keyVault.setFault({ kind: 'status', status: 429, probability: 0.05, retryAfterSeconds: null });
    azure.keyVault.setFault({ kind: 'reset', probability: 0.01 });
    const started = performance.now();
    const deadline = started + FAULT_SECONDS * 1000;
    await Promise.all(
      fleet.runtimes.map(async (runtime) => {
        while (performance.now() < deadline) {
          const n = pick();
          // The mix: mostly latest, some pinned-by-name misses (a fresh name each time now and then).
          const name = n < 190 ? `f-${n}` : `f-missing-${Math.floor(performance.now())}`;
          outcomes.push((await resolveOnce(runtime, fleet.caller, name)).outcome);
          if (heapAt10 === undefined && performance.now() - started >= 10_000) {
            global.gc?.();
            heapAt10 = process.memoryUsage().heapUsed;
          }
          // Each instance serves a request every 10 ms at most: a steady load, not a flood.
          await new Promise((r) => setTimeout(r, 10));
        }
      }),
    );
    global.gc?.();
    const heapEnd = process.memoryUsage().heapUsed;
    const elapsed = (performance.now() - started) / 1000;
    const injected = azure.keyVault.injectedCounts();
    const byCode = tally(outcomes.filter((o) => o !== '200' && !o.startsWith('404')));
    const errors = Object.values(byCode).reduce((a, b) => a + b, 0);
    const growth = heapEnd / (heapAt10 ?? heapStart);
    return [
      {
        config: label,
        figure: `under faults (5 % 429, 1 % resets), ${FAULT_INSTANCES} instances, ${FAULT_SECONDS} s: callers' errors by code (of ${outcomes.length}; 404s of the mix excluded)`,
        measured: errors === 0 ? '0' : `${((100 * errors) / outcomes.length).toFixed(2)} % ${JSON.stringify(byCode)}`,
        goal: 'figure',
        met: null,
      },
      {
        config: label,
        figure: 'under faults: vault requests per second (injected 429s / resets)',
        measured: `${(vaultGets(azure) / elapsed).toFixed(0)} (${injected.throttledByFault} / ${injected.resets})`,
        goal: 'figure',
        met: null,
      },
      {
        config: label,
        figure: 'under faults: heap after / at 10 s',
        measured: `${growth.toFixed(2)} (${(heapEnd / 1e6).toFixed(0)} MB)`,
        goal: '<= 1.2',
        met: growth <= 1.2,
      },
    ];
  } finally {
    azure.keyVault.clearFaults();
    azure.keyVault.setRateLimit(null);
    fleet.dispose();
  }
}

/**
 * One runtime reads PROBE_READS secrets one after the other (each a vault request). In direct mode
 * they should share one kept-alive connection, as an instance's SecretClient does in Azure.
 */
async function probeConnections(
  azure: LocalAzure,
  azurite: Azurite,
  direct: DirectVault | undefined,
): Promise<{ connections: number; ms: number }> {
  const config = configFor(false, baseEnv(azure, azurite, 3_600));
  if (typeof config === 'string') throw new Error(`the probe's settings: ${config}`);
  const fleet = startFleet(config, 1, 'probe');
  const before = direct?.accepted ?? 0;
  const started = performance.now();
  try {
    for (let i = 0; i < PROBE_READS; i++) {
      const { outcome } = await resolveOnce(fleet.runtimes[0]!, fleet.caller, `probe-${i}`);
      if (outcome !== '200') throw new Error(`probe read ${i}: ${outcome}`);
    }
    return { connections: (direct?.accepted ?? 0) - before, ms: performance.now() - started };
  } finally {
    fleet.dispose();
  }
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-scale-'));
  const azure = await startLocalAzure({ stateDir, vaults: [VAULT] });
  const azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
  const restore = useLocalAzureInProcess(azure);
  const rows: Row[] = [];
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  let direct: DirectVault | undefined;
  let mode = 'proxy';
  if (CONNECTION === 'direct') {
    try {
      // Before any SDK client exists: the SDK reads NO_PROXY once, with its first pipeline.
      direct = await useDirectVaultConnections({ targetPort: azure.keyVault.port });
      mode = 'direct';
    } catch (err: unknown) {
      mode = `proxy (direct not available: ${(err as NodeJS.ErrnoException).code ?? String(err)} on 127.0.0.1:443)`;
    }
  } else if (CONNECTION !== 'proxy') {
    throw new Error(`FLEET_CONNECTION must be direct or proxy, not ${CONNECTION}`);
  }
  try {
    const expiry = { expiresOn: new Date(Date.now() + 365 * 86_400_000) };
    for (let i = 0; i < PROBE_READS; i++) azure.keyVault.setSecret(VAULT, `probe-${i}`, `value-${i}`, expiry);
    for (let i = 0; i < STEADY_SECRETS; i++) azure.keyVault.setSecret(VAULT, `s-${i}`, `value-${i}`, expiry);
    for (let i = 0; i < BURST_SECRETS; i++) azure.keyVault.setSecret(VAULT, `b-${i}`, `value-${i}`, expiry);
    for (let i = 0; i < 190; i++) azure.keyVault.setSecret(VAULT, `f-${i}`, `value-${i}`, expiry);
    azure.keyVault.setSecret(VAULT, DATA_KEY_SECRET, randomBytes(32).toString('base64'));
    const probe = await probeConnections(azure, azurite, direct);
    if (direct && probe.connections === 0) {
      // The SDK read NO_PROXY before direct mode set it: every request went through the proxy.
      await direct.stop();
      direct = undefined;
      mode = 'proxy (NO_PROXY was read before direct mode set it)';
    }
    log(`connection mode: ${mode}`);
    log(
      `probe: ${PROBE_READS} sequential vault reads by one runtime in ${probe.ms.toFixed(0)} ms` +
        (direct ? ` over ${probe.connections} TCP connection(s) at the forwarder` : ''),
    );
    for (const shared of [false, true]) {
      const label = shared ? 'shared cache' : 'memory cache';
      const scenarios: Array<[string, number, (l: string, c: AppConfig, a: LocalAzure) => Promise<Row[]>]> = [
        ['steady state', 3_600, steadyState],
        ['cold burst', 300, coldBurst],
        ['one rotation', 3_600, rotation],
        ['under faults', 5, underFaults],
      ];
      for (const [scenario, ttl, run] of scenarios) {
        const config = configFor(shared, baseEnv(azure, azurite, ttl));
        if (typeof config === 'string') {
          rows.push({ config: label, figure: scenario, measured: config, goal: '-', met: null });
          continue;
        }
        log(`${label}: ${scenario} ...`);
        const started = performance.now();
        const acceptedBefore = direct?.accepted ?? 0;
        // Open descriptors and memory, sampled each second: a leak shows here long before EMFILE.
        let peakFds = openFds() ?? 0;
        let peakRss = process.memoryUsage.rss();
        const sampler = setInterval(() => {
          peakFds = Math.max(peakFds, openFds() ?? 0);
          peakRss = Math.max(peakRss, process.memoryUsage.rss());
        }, 1_000);
        try {
          rows.push(...(await run(label, config, azure)));
        } finally {
          clearInterval(sampler);
        }
        const seconds = ((performance.now() - started) / 1000).toFixed(0);
        log(
          `${label}: ${scenario} done in ${seconds} s; peak ${peakFds} open fds, ${(peakRss / 1e6).toFixed(0)} MB RSS; now ${openFds() ?? '?'} fds` +
            (direct ? `; ${direct.accepted - acceptedBefore} vault connections opened, ${direct.open} open` : ''),
        );
      }
    }
  } finally {
    await direct?.stop();
    restore();
    await azurite.stop();
    await azure.stop();
  }
  log('\nRequests go through each instance runtime.resolver.resolve: the production path minus HTTP, authentication and the audit log.');
  log(`Connections to the vault: ${mode}.`);
  printTable(rows);
  const outDir = path.join(ROOT, 'bench/results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    path.join(outDir, 'scale.json'),
    JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: os.cpus().length, connection: mode, rows }, null, 2),
  );
  log('\nwritten: bench/results/scale.json');
}

function printTable(rows: Row[]): void {
  const header = ['configuration', 'figure', 'measured', 'goal', 'met'];
  const cells = rows.map((r) => [r.config, r.figure, r.measured, r.goal, r.met === null ? '-' : r.met ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]): string => c.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ');
  process.stdout.write(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${cells.map(line).join('\n')}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:scale failed: ${err instanceof Error ? (err.stack ?? err.message) : 'error'}\n`);
    process.exit(1);
  },
);
