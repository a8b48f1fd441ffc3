/**
 * The runnable blocks of a Markdown document: a ```sh fence right below a `<!-- doc-test -->`
 * line. Each line of such a block that is not blank or a comment is one shell command (a line
 * ending in `\` continues on the next); a trailing `# → <text>` says the command's output must
 * contain `<text>` literally.
 */
export interface DocCommand {
  /** The command as written, without its `# →` comment. */
  command: string;
  /** What its output must contain, if anything. */
  expect?: string;
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
      const arrow = /\s+# → (.*)$/.exec(text);
      block.push(
        arrow?.[1] === undefined
          ? { command: text.trimEnd(), line }
          : { command: text.slice(0, arrow.index).trimEnd(), expect: arrow[1].trim(), line },
      );
    }
    if (j >= lines.length) throw new Error(`line ${i + 2}: the doc-test block is not closed`);
    blocks.push(block);
    i = j;
  }
  return blocks;
}
