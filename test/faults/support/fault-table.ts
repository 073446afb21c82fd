import type { AccountingRow } from './fault-rows';

const seconds = (ms: number | undefined) => (ms === undefined ? '–' : (ms / 1000).toFixed(1));

const COLUMNS: [string, (r: AccountingRow) => string | number][] = [
  ['case', (r) => r.case],
  ['published', (r) => r.published],
  ['results stored', (r) => r.resultsStored],
  ['reconciled + acked', (r) => r.reconciled],
  ['dead-lettered', (r) => r.deadLettered],
  ['skipped (filter)', (r) => r.skipped],
  ['redelivered', (r) => r.redelivered],
  ['dup. on wire', (r) => r.wireDuplicates],
  ['dup. stored', (r) => r.storedDuplicates],
  ['**lost**', (r) => `**${r.lost}**`],
  ['longest gap s', (r) => seconds(r.longestGapMs)],
  ['resume s', (r) => seconds(r.resumeMs)],
  ['drain s', (r) => seconds(r.drainMs)],
];

/** The accounting rows as a Markdown table, in case order, with each row's notes below it. */
export function faultTable(rows: AccountingRow[]): string {
  const sorted = [...rows].sort((a, b) => a.case.localeCompare(b.case, 'en', { numeric: true }));
  const lines = [
    `| ${COLUMNS.map(([name]) => name).join(' | ')} |`,
    `|${COLUMNS.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...sorted.map((row) => `| ${COLUMNS.map(([, cell]) => cell(row)).join(' | ')} |`),
  ];
  const notes = sorted.filter((r) => r.notes).map((r) => `- ${r.case}: ${r.notes}`);
  return [...lines, ...(notes.length ? ['', ...notes] : [])].join('\n');
}
