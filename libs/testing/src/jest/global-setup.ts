import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { findNatsServer } from '../nats-server.harness';
import { PROCESS_REGISTRY_ENV } from '../process-registry';

/** Makes sure a suitable nats-server exists (installing one into .tools/ if needed) and opens the process registry. */
export default async function globalSetup(): Promise<void> {
  let found: { binary: string; version: string };
  try {
    found = findNatsServer();
  } catch (err) {
    const installer = resolve(__dirname, '../../../../scripts/install-nats-server.sh');
    if (!existsSync(installer)) throw err;
    execFileSync('bash', [installer], { stdio: 'inherit' });
    found = findNatsServer();
  }
  process.env.NATS_SERVER_BIN = found.binary;
  const registry = join(tmpdir(), `conveyor-test-processes-${process.pid}.jsonl`);
  writeFileSync(registry, '');
  process.env[PROCESS_REGISTRY_ENV] = registry;
}
