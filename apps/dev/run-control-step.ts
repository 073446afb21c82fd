import type { NatsConnection } from 'nats';
import { progressReports, publishCancel } from '@conveyor-ci/nestjs';

/** `--cancel`: cancel the sample run once its first step reported progress, as a user pressing stop would. */
export const cancelRequested = process.argv.includes('--cancel');

/** Prints the run's progress reports (`ctx.progress()`) as they arrive, until `signal` aborts. */
export async function printProgress(nc: NatsConnection, runId: string, signal: AbortSignal): Promise<void> {
  let cancelled = false;
  for await (const report of progressReports(nc, runId, signal)) {
    const counts = report.total !== undefined ? `${report.done}/${report.total} ` : '';
    console.log(`  progress [${report.driver}] ${counts}(${Math.round(report.fraction * 100)} %)`);
    if (cancelRequested && !cancelled && report.fraction < 1) {
      cancelled = true;
      console.log(`  cancelling run ${runId} (--cancel)`);
      await publishCancel(nc, runId, 'cancelled from npm run dev -- --cancel');
    }
  }
}

/**
 * How to cancel a run from another shell: `npm run cancel` (the library's run control; no `nats`
 * CLI), with the env that reaches this NATS (`tlsEnv`: the client certificate when secured).
 */
export function cancelHint(natsUrl: string, runId: string, tlsEnv: Record<string, string> = {}): string {
  const env = [`CONVEYOR_NATS_URL=${natsUrl}`, ...Object.entries(tlsEnv).map(([k, v]) => `${k}=${v}`)];
  return `cancel it from another shell: ${env.join(' ')} npm run cancel -- ${runId} stop (or npm run dev -- --cancel)`;
}
