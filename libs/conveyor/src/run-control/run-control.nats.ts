import type { NatsConnection } from 'nats';
import {
  RUN_CANCELS_BUCKET,
  RunCancelRequest,
  RunProgress,
  assertSubjectToken,
  cancelSubject,
  runProgressSubjects,
  encodeGoJson,
} from '../protocol';

/**
 * Cancels a run on whichever replica of whichever driver holds it, from any process, and remembers
 * the cancel for runs not started yet (the `conveyor-run-cancels` KV bucket, `cancelTtlMs`). Used by
 * {@link RunControl} and by `@conveyor-ci/testing`.
 */
export async function publishCancel(
  nc: NatsConnection,
  runId: string,
  reason: string,
  ttlMs = 3_600_000,
): Promise<{ remembered: boolean }> {
  assertSubjectToken('run id', runId);
  const request: RunCancelRequest = { run_id: runId, reason, requested_at: new Date().toISOString() };
  const bytes = encodeGoJson(request);
  // Live runs first: the core publish reaches them at once; the KV entry is for runs started later.
  nc.publish(cancelSubject(runId), bytes);
  try {
    const kv = await nc.jetstream().views.kv(RUN_CANCELS_BUCKET, { ttl: ttlMs, history: 1 });
    await kv.put(runId, bytes);
    return { remembered: true };
  } catch {
    // No JetStream API permission (or no JetStream): replicas running it still heard the core cancel.
    await nc.flush();
    return { remembered: false };
  }
}

/** Live progress reports of run `runId` (every driver's step), until `signal` aborts. */
export async function* progressReports(
  nc: NatsConnection,
  runId: string,
  signal?: AbortSignal,
): AsyncGenerator<RunProgress> {
  const sub = nc.subscribe(runProgressSubjects(runId));
  const stop = () => sub.unsubscribe();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    for await (const msg of sub) {
      try {
        yield JSON.parse(new TextDecoder().decode(msg.data)) as RunProgress;
      } catch {
        // Not a progress report: skipped.
      }
    }
  } finally {
    signal?.removeEventListener('abort', stop);
    stop();
  }
}
