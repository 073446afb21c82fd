import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAULT_ROWS_ENV } from './fault-rows';

/** Opens the file the fault cases append their accounting rows to. */
export default async function faultSuiteSetup(): Promise<void> {
  const file = join(tmpdir(), `conveyor-fault-rows-${process.pid}.jsonl`);
  writeFileSync(file, '');
  process.env[FAULT_ROWS_ENV] = file;
}
