import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConveyorTestEnv, DriverProcess, freePort } from '@conveyor-ci/testing';

/** The built reference driver; `npm test` builds it first. */
export const REFERENCE_DRIVER_ENTRY = resolve(__dirname, '../../dist/src/main.js');

/** Starts the built reference driver as a child process on `env`'s NATS, on a free HTTP port. */
export async function startReferenceDriver(
  env: ConveyorTestEnv,
  driverName: string,
  extraEnv: Record<string, string> = {},
): Promise<DriverProcess> {
  if (!existsSync(REFERENCE_DRIVER_ENTRY)) {
    throw new Error(`${REFERENCE_DRIVER_ENTRY} is missing: run \`npm run build\` first (npm test does)`);
  }
  return new DriverProcess(REFERENCE_DRIVER_ENTRY, {
    CONVEYOR_NATS_URL: env.url,
    CONVEYOR_DRIVER_NAME: driverName,
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    ...extraEnv,
  });
}

/** Waits until the driver logs that it consumes (its consumer is bound and pulled). */
export function whenConsuming(driver: DriverProcess, timeoutMs = 20_000) {
  return driver.waitForLine((l) => String(l.json?.msg ?? l.raw).startsWith('consuming "'), timeoutMs);
}
