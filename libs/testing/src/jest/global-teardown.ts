import { PROCESS_REGISTRY_ENV, killRegistered } from '../process-registry';

/** Kills every process a harness spawned and removes their temp dirs, whatever the suites left behind. */
export default async function globalTeardown(): Promise<void> {
  const file = process.env[PROCESS_REGISTRY_ENV];
  if (file) killRegistered(file);
}
