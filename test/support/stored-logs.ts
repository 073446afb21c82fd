import type { JetStreamManager } from 'nats';
import { LOGS_ENGINE_STREAM } from '@conveyor-ci/nestjs/internal';

/**
 * Every stored Log of `runId` in `logs-engine`, in stream order. Read by sequence with the stream
 * API: a consumer on the server's work-queue stream would take the messages away (contract §5.1).
 */
export async function storedRunLogs(
  jsm: JetStreamManager,
  runId: string,
): Promise<{ raw: string; log: Record<string, string> }[]> {
  const { first_seq: first, last_seq: last } = (await jsm.streams.info(LOGS_ENGINE_STREAM)).state;
  const out: { raw: string; log: Record<string, string> }[] = [];
  for (let from = first; from <= last; from += 500) {
    const seqs = Array.from({ length: Math.min(500, last - from + 1) }, (_, i) => from + i);
    const messages = await Promise.all(
      seqs.map((seq) => jsm.streams.getMessage(LOGS_ENGINE_STREAM, { seq }).catch(() => undefined)),
    );
    for (const m of messages) {
      if (m?.subject !== `logs.${runId}`) continue;
      const raw = new TextDecoder().decode(m.data);
      out.push({ raw, log: JSON.parse(raw) });
    }
  }
  return out;
}
