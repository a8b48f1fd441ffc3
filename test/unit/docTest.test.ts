import { docTestBlocks } from '../support/docTest';

describe('docTestBlocks', () => {
  it('takes only the fenced blocks right below the mark, command by command', () => {
    const md = [
      '# Title',
      '```sh',
      'echo not marked',
      '```',
      '<!-- doc-test -->',
      '```sh',
      '# a comment line',
      '',
      'curl -s localhost:7071/api/x   # → "status":403',
      'npm run emulator -- rotate demo \\',
      '  --flag',
      'echo plain',
      'npm run broker -- policy explain x y   # → exit 1: denied',
      'sleep 1   # a comment for the reader: no output expected',
      '```',
    ].join('\n');
    expect(docTestBlocks(md)).toEqual([
      [
        { command: 'curl -s localhost:7071/api/x', expect: '"status":403', line: 9 },
        { command: 'npm run emulator -- rotate demo \\\n  --flag', line: 10 },
        { command: 'echo plain', line: 12 },
        { command: 'npm run broker -- policy explain x y', expect: 'denied', exitCode: 1, line: 13 },
        { command: 'sleep 1', line: 14 },
      ],
    ]);
  });

  it('refuses a mark that is not above a shell fence, and a fence left open', () => {
    expect(() => docTestBlocks('<!-- doc-test -->\n\n```sh\necho\n```')).toThrow('line 1: <!-- doc-test --> must be right above');
    expect(() => docTestBlocks('<!-- doc-test -->\n```sh\necho')).toThrow('line 2: the doc-test block is not closed');
  });
});
