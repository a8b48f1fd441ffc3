import Ajv2020 from 'ajv/dist/2020';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import { openApiDocument } from '../../shared/http/openApiDocument';

/** The $id under which the whole document is known to Ajv, so `#/components/...` refs resolve inside it. */
const DOCUMENT_ID = 'openapi';

type Json = Record<string, unknown>;

/** An HTTP answer as the tests see it. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/**
 * An Ajv for JSON Schema 2020-12 (OpenAPI 3.1's dialect) that knows the whole document.
 * `strict: false` lets OpenAPI's own keywords (`description` on refs, `example`) pass.
 */
export function documentAjv(): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
  ajv.addFormat('uri', /^[a-z][a-z0-9+.-]*:\S+$/i);
  ajv.addSchema(structuredClone(openApiDocument), DOCUMENT_ID);
  return ajv;
}

/** Follows a local `$ref` (`#/components/...`) to the object it names, or undefined when it names nothing. */
export function resolvePointer(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = openApiDocument;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof node !== 'object' || node === null || !(key in node)) return undefined;
    node = (node as Json)[key];
  }
  return node;
}

/** The object itself, or the one its `$ref` names. */
function deref(node: unknown): Json {
  const ref = (node as { $ref?: unknown } | undefined)?.$ref;
  const target = typeof ref === 'string' ? resolvePointer(ref) : node;
  if (typeof target !== 'object' || target === null) throw new Error(`unresolved ${String(ref)}`);
  return target as Json;
}

/** Ajv's errors, one line each. */
function describe(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`).join('; ');
}

/**
 * Checks one real answer against the document: its status is documented for the route and method,
 * its content type is a documented media type, its body validates against that media type's schema,
 * and the headers the document marks required are there. Returns every mismatch (empty: conforms).
 */
export function conformanceProblems(ajv: Ajv2020, documentPath: string, method: string, answer: Answer): string[] {
  const where = `${method.toUpperCase()} ${documentPath} ${answer.status}`;
  const pathItem = (openApiDocument.paths as unknown as Record<string, Json | undefined>)[documentPath];
  const operation = pathItem?.[method.toLowerCase()] as { responses: Record<string, unknown> } | undefined;
  if (!operation) return [`${where}: no such operation in the document`];
  const documented = operation.responses[String(answer.status)];
  if (!documented) return [`${where}: status not documented (documented: ${Object.keys(operation.responses).join(', ')})`];
  const responsePointer = pointerOf(documented, `/paths/${escape(documentPath)}/${method.toLowerCase()}/responses/${answer.status}`);
  const response = deref(documented);
  const problems: string[] = [];

  for (const [name, headerOrRef] of Object.entries((response.headers ?? {}) as Json)) {
    const header = deref(headerOrRef);
    const value = answer.headers.get(name);
    if (value === null) {
      if (header.required === true) problems.push(`${where}: required header ${name} missing`);
      continue;
    }
    const validate = validator(ajv, `${pointerOf(headerOrRef, `${responsePointer}/headers/${escape(name)}`)}/schema`);
    const valid: boolean = validate(value); // a plain boolean: the type guard would narrow value to never
    if (!valid) problems.push(`${where}: header ${name}="${value}": ${describe(validate.errors)}`);
  }

  const content = response.content as Record<string, unknown> | undefined;
  const contentType = answer.headers.get('content-type');
  if (!content) {
    if (answer.text) problems.push(`${where}: a body, but the document describes none`);
    return problems;
  }
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  if (!content[mediaType]) {
    problems.push(`${where}: content type "${contentType ?? ''}" not documented (documented: ${Object.keys(content).join(', ')})`);
    return problems;
  }
  let body: unknown;
  try {
    body = JSON.parse(answer.text) as unknown;
  } catch {
    problems.push(`${where}: the body is not JSON`);
    return problems;
  }
  const validate = validator(ajv, `${responsePointer}/content/${escape(mediaType)}/schema`);
  if (!validate(body)) problems.push(`${where}: body: ${describe(validate.errors)}`);
  return problems;
}

const validators = new WeakMap<Ajv2020, Map<string, ValidateFunction>>();

/** The compiled schema at a JSON pointer inside the document (compiled once per Ajv). */
function validator(ajv: Ajv2020, pointer: string): ValidateFunction {
  let compiled = validators.get(ajv);
  if (!compiled) validators.set(ajv, (compiled = new Map()));
  let validate = compiled.get(pointer);
  if (!validate) compiled.set(pointer, (validate = ajv.compile({ $ref: `${DOCUMENT_ID}#${pointer}` })));
  return validate;
}

/** Where a node lives in the document: where its `$ref` points, or where it was found. */
function pointerOf(node: unknown, foundAt: string): string {
  const ref = (node as { $ref?: unknown } | undefined)?.$ref;
  return typeof ref === 'string' ? ref.slice(1) : foundAt;
}

function escape(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}
