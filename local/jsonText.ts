/**
 * JSON files read by the operator commands (the deployment file, local.settings.json): a syntax
 * error names the file, line and column as editors and compilers do, `deploy.json:3:15: <reason>`.
 */

/** A file that is not valid JSON; the message is `<name>:<line>:<column>: <reason>`. */
export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
}

/**
 * `JSON.parse` of a file's text (a leading byte order mark is ignored, as editors hide it).
 * @param name names the file in the message.
 * @throws JsonSyntaxError naming the line and column of the first error and the parser's reason.
 */
export function parseJsonText(text: string, name: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return JSON.parse(body) as unknown;
  } catch (err: unknown) {
    const { reason, offset } = explainSyntaxError(err instanceof Error ? err.message : String(err), body);
    if (offset === undefined) throw new JsonSyntaxError(`${name}: ${reason}`);
    const { line, column } = lineAndColumn(body, offset);
    throw new JsonSyntaxError(`${name}:${line}:${column}: ${reason}`);
  }
}

/** 1-based line and column (in UTF-16 units, as the parser counts) of `offset` in `text`. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lastBreak = before.lastIndexOf('\n');
  return { line: before.split('\n').length, column: before.length - lastBreak };
}

/**
 * The parser's reason without its own position (or the text it quotes), and where the error is:
 * the position V8 gives (`... in JSON at position 12 (line 2 column 5)`, `... after JSON at position 7`) or, when it gives none
 * (`Unexpected token 'y', "..." is not valid JSON`, `Unexpected end of JSON input`), the first
 * offset a JSON grammar scan of the text cannot accept.
 */
function explainSyntaxError(message: string, text: string): { reason: string; offset: number | undefined } {
  const positioned = /^([\s\S]*?)(?: in JSON)? at position (\d+)(?: \(line \d+ column \d+\))?$/.exec(message);
  if (positioned) return { reason: positioned[1] as string, offset: Number(positioned[2]) };
  const token = /^Unexpected token '([\s\S]+?)', [\s\S]* is not valid JSON$/.exec(message);
  const reason = token ? `Unexpected token '${printable(token[1] as string)}'` : (message.split('\n')[0] ?? message).trim();
  return { reason, offset: firstErrorOffset(text) };
}

/** A character as it can be shown on one line: a control character as its JSON escape. */
function printable(ch: string): string {
  return ch.length === 1 && ch.charCodeAt(0) < 0x20 ? JSON.stringify(ch).slice(1, -1) : ch;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WHITESPACE = new Set([' ', '\t', '\n', '\r']);
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);

/** The offset of the first character the JSON grammar does not accept (the text's length when it ends early). */
export function firstErrorOffset(text: string): number | undefined {
  let i = 0;
  const fail = (): never => {
    throw new ScanStop(i);
  };
  const skipWhitespace = (): void => {
    while (i < text.length && WHITESPACE.has(text[i] as string)) i++;
  };
  const expect = (ch: string): void => {
    if (text[i] !== ch) fail();
    i++;
  };
  const string = (): void => {
    expect('"');
    for (;;) {
      const ch = text[i];
      if (ch === undefined || ch < ' ') fail();
      if (ch === '"') {
        i++;
        return;
      }
      if (ch === '\\') {
        i++;
        if (text[i] === 'u') {
          i++;
          for (let k = 0; k < 4; k++) {
            if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fail();
            i++;
          }
          continue;
        }
        if (!ESCAPES.has(text[i] ?? '')) fail();
      }
      i++;
    }
  };
  const value = (): void => {
    skipWhitespace();
    const ch = text[i];
    if (ch === '{' || ch === '[') {
      const close = ch === '{' ? '}' : ']';
      i++;
      skipWhitespace();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (close === '}') {
          skipWhitespace();
          string();
          skipWhitespace();
          expect(':');
        }
        value();
        skipWhitespace();
        if (text[i] === close) {
          i++;
          return;
        }
        expect(',');
      }
    }
    if (ch === '"') return string();
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) {
      NUMBER.lastIndex = i;
      if (!NUMBER.test(text)) fail();
      i = NUMBER.lastIndex;
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (ch === word[0]) {
        for (const letter of word) expect(letter);
        return;
      }
    }
    fail();
  };
  try {
    value();
    skipWhitespace();
    if (i < text.length) fail();
    return undefined;
  } catch (err: unknown) {
    if (err instanceof ScanStop) return err.offset;
    return undefined; // nesting too deep for this scan: the message goes without a position
  }
}

/** Ends {@link firstErrorOffset}'s scan where the text stops being JSON. */
class ScanStop extends Error {
  constructor(readonly offset: number) {
    super(`not JSON from offset ${offset}`);
  }
}
