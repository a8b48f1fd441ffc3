/**
 * The runnable blocks of a Markdown document: a ```sh fence right below a `<!-- doc-test -->`
 * line. Each line of such a block that is not blank or a comment is one shell command (a line
 * ending in `\` continues on the next); a trailing `# → <text>` says the command's output must
 * contain `<text>` literally, and `# → exit <n>: <text>` that it also ends with exit code n (else 0).
 * Any other trailing `# <text>` is a comment for the reader, left out of the command.
 */
export interface DocCommand {
  /** The command as written, without its trailing comment (`# →` or other). */
  command: string;
  /** What its output must contain, if anything. */
  expect?: string;
  /** The exit code it must end with, when not 0. */
  exitCode?: number;
  /** 1-based line of the Markdown file where the command starts. */
  line: number;
}

export const DOC_TEST_MARK = '<!-- doc-test -->';

/** @throws Error naming the line when a mark is not followed by a ```sh fence, or a fence is not closed. */
export function docTestBlocks(markdown: string): DocCommand[][] {
  const lines = markdown.split(/\r?\n/);
  const blocks: DocCommand[][] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== DOC_TEST_MARK) continue;
    if (!/^```(sh|bash)\s*$/.test(lines[i + 1] ?? ''))
      throw new Error(`line ${i + 1}: ${DOC_TEST_MARK} must be right above a \`\`\`sh fence`);
    const block: DocCommand[] = [];
    let j = i + 2;
    let pending: { text: string; line: number } | undefined;
    for (; j < lines.length && !/^```\s*$/.test(lines[j] ?? ''); j++) {
      const raw = lines[j] ?? '';
      if (pending === undefined && (raw.trim() === '' || raw.trim().startsWith('#'))) continue;
      const text = pending === undefined ? raw : `${pending.text}\n${raw}`;
      const line = pending?.line ?? j + 1;
      if (/\\\s*$/.test(raw)) {
        pending = { text, line };
        continue;
      }
      pending = undefined;
      // A trailing comment: `# → [exit <n>: ]<text>` (groups 1 and 2), or any other (for the reader only).
      const comment = /\s+# (?:→ (?:exit (\d+): )?(.*)|.*)$/.exec(text);
      const command: DocCommand = { command: (comment ? text.slice(0, comment.index) : text).trimEnd(), line };
      if (comment?.[2] !== undefined) command.expect = comment[2].trim();
      if (comment?.[1] !== undefined) command.exitCode = Number(comment[1]);
      block.push(command);
    }
    if (j >= lines.length) throw new Error(`line ${i + 2}: the doc-test block is not closed`);
    blocks.push(block);
    i = j;
  }
  return blocks;
}
