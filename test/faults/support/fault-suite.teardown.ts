import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { FAULT_ROWS_ENV, type AccountingRow } from './fault-rows';
import { faultTable } from './fault-table';

const RELIABILITY_DOC = resolve(__dirname, '../../../docs/RELIABILITY.md');
const START = '<!-- fault-table:start -->';
const END = '<!-- fault-table:end -->';

/**
 * Prints the accounting table of every case that ran; after a full run (`npm run test:faults`,
 * `CONVEYOR_FAULTS=all`) also writes it into docs/RELIABILITY.md.
 */
export default async function faultSuiteTeardown(): Promise<void> {
  const file = process.env[FAULT_ROWS_ENV];
  if (!file || !existsSync(file)) return;
  const rows = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AccountingRow);
  rmSync(file, { force: true });
  if (rows.length === 0) return;
  const table = faultTable(rows);
  process.stdout.write(`\nFault suite accounting (${rows.length} row(s)):\n\n${table}\n\n`);
  if (process.env.CONVEYOR_FAULTS !== 'all' || !existsSync(RELIABILITY_DOC)) return;
  const doc = readFileSync(RELIABILITY_DOC, 'utf8');
  const begin = doc.indexOf(START);
  const end = doc.indexOf(END);
  if (begin < 0 || end < begin) return;
  const stamp =
    `Latest run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, \`npm run test:faults\`, ` +
    `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), node ${process.version}.`;
  writeFileSync(
    RELIABILITY_DOC,
    `${doc.slice(0, begin + START.length)}\n${stamp}\n\n${table}\n${doc.slice(end)}`,
  );
  process.stdout.write(`docs/RELIABILITY.md updated\n`);
}
