/**
 * Azure's own words for a failed call: its status, its code and its message, whichever body shape
 * the service answered with. The SDKs read only ARM's `{error: {code, message}}`; a body of another
 * shape (the Web RP's capitalised one above all) reaches the user as "Unexpected status code: 400"
 * unless it is read here. Every management client of a deployment carries {@link errorBodyPolicy},
 * which keeps the text of each error response for {@link describeAzureError}.
 */
import { isRestError, type PipelinePolicy, type PipelineRequest } from '@azure/core-rest-pipeline';

/** What Azure said, read from an error response body. */
export interface AzureErrorBody {
  readonly code?: string;
  readonly message?: string;
  /** The Web RP's `ErrorEntity.ExtendedCode` (e.g. `51021`), or a detail's code under ARM's shape. */
  readonly extendedCode?: string;
  /** Details that say more than the message (ARM's `details[]`), as `code: message`. */
  readonly details?: readonly string[];
}

/** How much of one message a line carries: Azure's messages are sentences, not documents. */
const MAX_MESSAGE_CHARS = 600;
const MAX_DETAILS = 3;

const str = (value: unknown): string | undefined => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined);
const obj = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;

/**
 * Reads an error body in any of the shapes Azure answers with:
 * - ARM's `{"error": {"code", "message", "details": [...]}}` (azure-rest-api-specs, common-types
 *   `ErrorResponse`; Storage, Event Grid, Log Analytics, Authorization and Key Vault management
 *   answer in it);
 * - the Web RP's `{"Code", "Message", "Target", "Details": [{"Message"}, {"Code"}, {"ErrorEntity":
 *   {"ExtendedCode", "MessageTemplate", "Parameters", "Code", "Message"}}], "Innererror"}` (App
 *   Service; public error reports for Flex Consumption sites);
 * - a bare `{"code", "message"}` (some resource providers answer without the `error` wrapper);
 * - Table storage's `{"odata.error": {"code", "message": {"lang", "value"}}}`;
 * - Blob and Queue storage's XML `<Error><Code>..</Code><Message>..</Message></Error>`.
 * Answers undefined for a body that is none of these (plain text is left to the caller).
 */
export function parseAzureErrorBody(text: string | undefined): AzureErrorBody | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const trimmed = text.trim();
  if (trimmed.startsWith('<')) return parseXmlError(trimmed);
  let json: unknown;
  try {
    json = JSON.parse(trimmed);
  } catch {
    return undefined;
  }
  const body = obj(json);
  if (!body) return undefined;
  const arm = obj(body['error']);
  if (arm) {
    const details = (Array.isArray(arm['details']) ? arm['details'] : [])
      .map(obj)
      .filter((d): d is Record<string, unknown> => d !== undefined)
      .map((d) => [str(d['code']), str(d['message'])].filter(Boolean).join(': '))
      .filter((d) => d !== '');
    return clean({ code: str(arm['code']), message: str(arm['message']), details });
  }
  if ('Code' in body || 'Message' in body) {
    const entity = (Array.isArray(body['Details']) ? body['Details'] : []).map((d) => obj(obj(d)?.['ErrorEntity'])).find(Boolean);
    return clean({
      code: str(body['Code']) ?? str(entity?.['Code']),
      message: str(body['Message']) ?? str(entity?.['Message']),
      extendedCode: str(entity?.['ExtendedCode']),
    });
  }
  const odata = obj(body['odata.error']);
  if (odata) return clean({ code: str(odata['code']), message: str(obj(odata['message'])?.['value']) ?? str(odata['message']) });
  if ('code' in body || 'message' in body) return clean({ code: str(body['code']), message: str(body['message']) });
  return undefined;
}

function parseXmlError(xml: string): AzureErrorBody | undefined {
  const tag = (name: string): string | undefined => str(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml)?.[1]);
  const code = tag('Code');
  const message = tag('Message');
  return code || message ? clean({ code, message }) : undefined;
}

function clean(e: AzureErrorBody): AzureErrorBody | undefined {
  if (!e.code && !e.message) return undefined;
  const out: { -readonly [K in keyof AzureErrorBody]: AzureErrorBody[K] } = {};
  if (e.code) out.code = e.code;
  // Storage appends "RequestId:...\nTime:..." lines to its messages: the first line is what it says.
  const message = e.message?.split(/\r?\nRequestId:/)[0];
  if (message) out.message = message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 3)}...` : message;
  if (e.extendedCode) out.extendedCode = e.extendedCode;
  const details = (e.details ?? []).filter((d) => !out.message?.includes(d.replace(/^[^:]*: /, '')));
  if (details.length > 0) out.details = details.slice(0, MAX_DETAILS);
  return out;
}

/** Error response bodies by request, kept by {@link errorBodyPolicy} until the error is read. */
const errorBodies = new WeakMap<PipelineRequest, string>();

/**
 * A pipeline policy that keeps the text of every error response (status 400 and above) beside its
 * request, so {@link describeAzureError} can read a body the SDK did not understand. Per call, after
 * the SDK's retries: the body kept is the one the caller's error came from. It is the modular
 * clients (`@azure/arm-appservice` 19, `@azure/arm-storage` 21) that need it: they drop the text;
 * the classic ones (core-client) throw inside the pipeline, before this policy sees the answer, and
 * keep the text on `err.response.bodyAsText`.
 */
export const errorBodyPolicy: PipelinePolicy = {
  name: 'secretBrokerErrorBody',
  async sendRequest(request, next) {
    const response = await next(request);
    if (response.status >= 400 && typeof response.bodyAsText === 'string') errorBodies.set(request, response.bodyAsText);
    return response;
  },
};

/** The body text of an SDK failure: what the SDK kept, else what {@link errorBodyPolicy} kept. */
function bodyTextOf(err: unknown): string | undefined {
  if (!isRestError(err)) return undefined;
  const fromResponse = err.response?.bodyAsText;
  if (typeof fromResponse === 'string' && fromResponse !== '') return fromResponse;
  return err.request ? errorBodies.get(err.request) : undefined;
}

/**
 * `400 BadRequest: The following site configuration property ... (extended code 51021)`: the status,
 * Azure's code and its message, read from the body whatever its shape; then the SDK's own code and
 * message; for anything else, the error's message. Only what Azure answered: a message that may quote
 * a value sent (app settings) is redacted by the caller ({@link step} with `secrets`).
 */
export function describeAzureError(err: unknown): string {
  if (!isRestError(err)) return err instanceof Error ? err.message : String(err);
  const status = err.statusCode ?? err.response?.status;
  const body = parseAzureErrorBody(bodyTextOf(err));
  // The SDK's message is the raw body when it could not read one: never repeat a whole body.
  const sdkMessage = /^\s*[{<]/.test(err.message) || /^Unexpected status code/.test(err.message) ? undefined : err.message;
  const code = body?.code ?? err.code;
  const message = body?.message ?? sdkMessage;
  const head = [status === undefined ? undefined : String(status), code].filter(Boolean).join(' ');
  const parts = [head && message ? `${head}:` : head, message].filter(Boolean).join(' ');
  const extras = [
    body?.extendedCode ? `extended code ${body.extendedCode}` : undefined,
    ...(body?.details ?? []).map((d) => `detail ${d}`),
  ].filter(Boolean);
  const text = parts || 'request failed';
  return extras.length > 0 ? `${text} (${extras.join('; ')})` : text;
}

/** The HTTP status of an SDK failure, if it was one. */
export function statusOf(err: unknown): number | undefined {
  if (isRestError(err)) return err.statusCode ?? err.response?.status;
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Azure's error code of an SDK failure, read from the body when the SDK did not (the Web RP's `Code`). */
export function codeOf(err: unknown): string | undefined {
  if (!isRestError(err)) return (err as { code?: unknown } | null)?.code as string | undefined;
  return parseAzureErrorBody(bodyTextOf(err))?.code ?? err.code;
}
