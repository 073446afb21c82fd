import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { DriverProcess, freePort } from '@conveyor-ci/testing';
import { REFERENCE_DRIVER_ENTRY, whenConsuming } from '../../support/reference-driver';
import { deadLetterSubject } from './stored-records';

/** The built fault driver (apps/fault-driver): a `fault` handler that misbehaves on request. */
export const FAULT_DRIVER_ENTRY = resolve(__dirname, '../../../dist/apps/fault-driver/main.js');

/** Driver lines with the time they were logged (pino's `time`), to relate faults and progress. */
export interface TimedDriver {
  process: DriverProcess;
  /** Its HTTP port on 127.0.0.1 (`/health/ready`, `/metrics`). */
  port: number;
  /** When the driver logged a line starting with `prefix` at or after `since`. */
  loggedAt(prefix: string, since?: number): number | undefined;
}

/**
 * Starts the built reference driver (`reference`) or fault driver (`fault`) as a child process with
 * every URL in `servers`, dead letters on {@link deadLetterSubject}, and waits until it consumes.
 */
export async function startDriver(
  kind: 'reference' | 'fault',
  servers: string[],
  driverName: string,
  env: Record<string, string> = {},
  options: { waitConsuming?: boolean } = {},
): Promise<TimedDriver> {
  const entry = kind === 'reference' ? REFERENCE_DRIVER_ENTRY : FAULT_DRIVER_ENTRY;
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first`);
  const port = await freePort();
  const child = new DriverProcess(entry, {
    CONVEYOR_NATS_URL: servers.join(','),
    CONVEYOR_DRIVER_NAME: driverName,
    CONVEYOR_DEAD_LETTER_SUBJECT: deadLetterSubject(driverName),
    PORT: String(port),
    HOST: '127.0.0.1',
    ...env,
  });
  if (options.waitConsuming !== false) await whenConsuming(child, 30_000);
  return {
    process: child,
    port,
    loggedAt(prefix, since = 0) {
      for (const line of child.lines) {
        const time = Number(line.json?.time);
        if (time >= since && String(line.json?.msg ?? '').startsWith(prefix)) return time;
      }
      return undefined;
    },
  };
}
