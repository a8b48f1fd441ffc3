import type { CloudEvent, EventGridEvent } from '@azure/eventgrid';
import { InvalidRequestError } from '../errors';

/** The Key Vault secret events the broker acts on. */
export const SECRET_EVENT_KINDS = ['SecretNewVersionCreated', 'SecretNearExpiry', 'SecretExpired'] as const;
export type SecretEventKind = (typeof SECRET_EVENT_KINDS)[number];

/** A Key Vault event, the same whichever schema it came in. */
export interface KeyVaultEvent {
  readonly id: string;
  /** The full type, e.g. `Microsoft.KeyVault.SecretNewVersionCreated`. */
  readonly type: string;
  /** The secret event kind, or undefined for any other type (logged and acknowledged). */
  readonly kind: SecretEventKind | undefined;
  readonly schema: 'EventGrid' | 'CloudEvents';
  readonly time: string;
  /** The Event Grid `topic` or CloudEvents `source`: the vault's ARM resource id. */
  readonly source: string | undefined;
  /** From `data`: the vault's name (the first label of its host name). */
  readonly vaultName: string | undefined;
  readonly objectType: string | undefined;
  readonly objectName: string | undefined;
  readonly version: string | undefined;
  readonly notBefore: string | null;
  readonly expiresOn: string | null;
}

const PREFIX = 'Microsoft.KeyVault.';

/**
 * Reads one event as the Functions host hands it to an Event Grid trigger, in the Event Grid
 * schema or CloudEvents 1.0 (Key Vault can send either), through `@azure/eventgrid`'s deserializer.
 * @throws InvalidRequestError when it is neither.
 */
export async function parseKeyVaultEvent(raw: unknown): Promise<KeyVaultEvent> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidRequestError('An event must be a JSON object');
  }
  // Loaded on the first event: apps that never receive one never pay for it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  const { EventGridDeserializer } = require('@azure/eventgrid') as typeof import('@azure/eventgrid');
  const deserializer = new EventGridDeserializer();
  const record = raw as Record<string, unknown>;
  try {
    if ('specversion' in record) {
      const [event] = await deserializer.deserializeCloudEvents(JSON.stringify(record));
      if (!event) throw new Error('empty');
      return fromCloudEvent(event);
    }
    const [event] = await deserializer.deserializeEventGridEvents(JSON.stringify(record));
    if (!event) throw new Error('empty');
    return fromEventGridEvent(event);
  } catch (err: unknown) {
    if (err instanceof InvalidRequestError) throw err;
    throw new InvalidRequestError(
      `Not an Event Grid or CloudEvents 1.0 event (${err instanceof Error ? err.message.slice(0, 120) : 'unreadable'})`,
    );
  }
}

function fromEventGridEvent(e: EventGridEvent<unknown>): KeyVaultEvent {
  return build(e.id, e.eventType, 'EventGrid', e.eventTime, e.topic, e.data);
}

function fromCloudEvent(e: CloudEvent<unknown>): KeyVaultEvent {
  return build(e.id, e.type, 'CloudEvents', e.time ?? new Date(), e.source, e.data);
}

function build(
  id: string,
  type: string,
  schema: KeyVaultEvent['schema'],
  time: Date | string,
  source: string | undefined,
  data: unknown,
): KeyVaultEvent {
  const kindName = type.startsWith(PREFIX) ? type.slice(PREFIX.length) : '';
  const kind = (SECRET_EVENT_KINDS as readonly string[]).includes(kindName) ? (kindName as SecretEventKind) : undefined;
  const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  return {
    id,
    type,
    kind,
    schema,
    time: new Date(time).toISOString(),
    source,
    vaultName: text(d, 'VaultName'),
    objectType: text(d, 'ObjectType'),
    objectName: text(d, 'ObjectName'),
    version: text(d, 'Version'),
    notBefore: epoch(d, 'NBF'),
    expiresOn: epoch(d, 'EXP'),
  };
}

/** Key Vault sends PascalCase (`VaultName`); the SDK's typings say camelCase: read either. */
function field(d: Record<string, unknown>, pascal: string): unknown {
  if (pascal in d) return d[pascal];
  const camel = pascal.length <= 3 ? pascal.toLowerCase() : pascal[0]?.toLowerCase() + pascal.slice(1);
  return d[camel];
}

function text(d: Record<string, unknown>, name: string): string | undefined {
  const value = field(d, name);
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function epoch(d: Record<string, unknown>, name: string): string | null {
  const value = field(d, name);
  return typeof value === 'number' && Number.isFinite(value) ? new Date(value * 1000).toISOString() : null;
}
