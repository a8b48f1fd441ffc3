import type { AdoptionAnswer } from '../shared/adoption/adoptionRules';
import type { HealthReport, HealthStatus } from '../shared/health/healthReport';

const COLUMNS = ['vault', 'check', 'target', 'status', 'cause', 'remedy'] as const;

/** ANSI SGR colours of a status: green ok, yellow warning, red failed; skipped stays plain. */
const COLOUR: Record<HealthStatus, string | undefined> = { ok: '32', warning: '33', failed: '31', skipped: undefined };

const paint = (status: HealthStatus, text: string, colour: boolean): string => {
  const code = COLOUR[status];
  return colour && code ? `\u001b[${code}m${text}\u001b[0m` : text;
};

/**
 * The health report as lines of a plain-text table (vault, check, target, status, cause, remedy),
 * after a summary line. Columns are padded on the visible text, so colour codes never shift them;
 * `colour` paints statuses (see {@link useColour}).
 */
export function formatHealthTable(report: HealthReport, options: { colour: boolean }): string[] {
  const rows = report.vaults.flatMap((vault) =>
    vault.checks.map((c) => ({
      status: c.status,
      cells: [vault.vault, c.check, c.target ?? '-', c.status, c.cause ?? '-', c.remedy ?? ''],
    })),
  );
  const widths = COLUMNS.map((title, i) => Math.max(title.length, ...rows.map((r) => r.cells[i]?.length ?? 0)));
  const line = (cells: readonly string[], status?: HealthStatus): string =>
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0);
        return i === COLUMNS.indexOf('status') && status ? paint(status, padded, options.colour) : padded;
      })
      .join('  ')
      .trimEnd();
  const vaults = report.vaults.map((v) => `${v.vault}=${paint(v.status, v.status, options.colour)}`).join(', ');
  return [
    `Health: ${paint(report.status, report.status, options.colour)} (${vaults}; started ${report.startedAt}, ${report.durationMs} ms)`,
    '',
    line(COLUMNS),
    ...rows.map((r) => line(r.cells, r.status)),
  ];
}

/** Colour only for a terminal, and never when `NO_COLOR` is set (https://no-color.org). */
export function useColour(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

/**
 * `broker adoption`: the answer of `GET /api/secrets/{name}/adoption` as lines of a plain-text table
 * (version, caller, since, last read), newest version first, after a title line; one line when
 * nothing was recorded.
 */
export function formatAdoptionTable(answer: AdoptionAnswer): string[] {
  const subject = `secret ${answer.secret} in vault ${answer.vault}`;
  if (answer.versions.length === 0) return [`No caller has read ${subject} since adoption is recorded (nothing in table brokeradoption).`];
  const titles = ['version', 'caller', 'since', 'last read'];
  const rows = answer.versions.flatMap((v) => v.callers.map((c) => [v.version, c.caller, c.since, c.lastRead]));
  const widths = titles.map((title, i) => Math.max(title.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const callers = rows.length === 1 ? '1 caller' : `${rows.length} callers`;
  const versions = answer.versions.length === 1 ? '1 version' : `${answer.versions.length} versions`;
  return [`Adoption of ${subject}: ${callers}, ${versions} (newest first)`, '', line(titles), ...rows.map(line)];
}
