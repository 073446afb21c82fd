import { appendFileSync, readFileSync, rmSync } from 'node:fs';

/**
 * Jest's global setup sets this to a file; every process a harness spawns is appended to it, so the
 * global teardown can kill leftovers even when a suite crashed before its own cleanup ran.
 */
export const PROCESS_REGISTRY_ENV = 'CONVEYOR_TEST_PROCESS_REGISTRY';

/** Records a spawned process (and, when it leads one, its process group) and a directory to remove. */
export function registerSpawned(entry: { pid?: number; group?: boolean; dir?: string }): void {
  const file = process.env[PROCESS_REGISTRY_ENV];
  if (file) appendFileSync(file, `${JSON.stringify(entry)}\n`);
}

/** Kills everything recorded in `file` and removes recorded directories; returns how many processes were still alive. */
export function killRegistered(file: string): number {
  let killed = 0;
  let lines: string[] = [];
  try {
    lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return 0;
  }
  for (const line of lines) {
    const { pid, group, dir } = JSON.parse(line) as { pid?: number; group?: boolean; dir?: string };
    for (const target of pid ? (group ? [-pid, pid] : [pid]) : []) {
      try {
        process.kill(target, 'SIGKILL');
        killed += 1;
      } catch {
        /* already gone */
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  rmSync(file, { force: true });
  return killed;
}

const live = new Set<{ kill(signal?: NodeJS.Signals): boolean }>();
let exitHookInstalled = false;

/**
 * Kills `child` when this process exits (normally, on an uncaught error, or via process.exit), so a
 * crashed test or an interrupted demo does not leave servers behind. Returns a function to forget it.
 */
export function killOnExit(child: { kill(signal?: NodeJS.Signals): boolean }): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => live.forEach((c) => c.kill('SIGKILL')));
  }
  live.add(child);
  return () => live.delete(child);
}
