import type { JetStreamManager, StoredMsg } from 'nats';
import { DEAD_LETTER_HEADERS } from '@conveyor-ci/nestjs';

/** The engine's work queue, where results are stored (nothing consumes it in the fault suite). */
const PIPELINE_ENGINE_STREAM = 'pipeline-engine';
/** A stream the fault suite adds to keep the drivers' dead-letter records. */
export const DEAD_LETTER_STREAM = 'fault-dead-letters';
/** `deadLetterSubject` of a driver in the fault suite (captured by {@link DEAD_LETTER_STREAM}). */
export const deadLetterSubject = (driver: string) => `faults.deadletter.${driver}`;

/** Adds the dead-letter stream (R`replicas`) so the records a driver publishes are stored and counted. */
export async function addDeadLetterStream(jsm: JetStreamManager, replicas = 1): Promise<void> {
  await jsm.streams.add({
    name: DEAD_LETTER_STREAM,
    subjects: ['faults.deadletter.>'],
    num_replicas: replicas,
  });
}

/** Every message of `stream`, read by sequence (a consumer on a work queue would take them away). */
async function readStream(jsm: JetStreamManager, stream: string): Promise<StoredMsg[]> {
  const { first_seq: first, last_seq: last, messages } = (await jsm.streams.info(stream)).state;
  const out: StoredMsg[] = [];
  if (messages === 0) return out;
  for (let from = first; from <= last; from += 256) {
    const seqs = Array.from({ length: Math.min(256, last - from + 1) }, (_, i) => from + i);
    const batch = await Promise.all(
      seqs.map((seq) => jsm.streams.getMessage(stream, { seq }).catch(() => undefined)),
    );
    for (const m of batch) if (m) out.push(m);
  }
  return out;
}

/** What a stored result said. */
export interface StoredResult {
  success: boolean;
  message: string;
}

/** Stored results per run id, in stream order. */
export async function storedResults(jsm: JetStreamManager): Promise<Map<string, StoredResult[]>> {
  const byRun = new Map<string, StoredResult[]>();
  for (const m of await readStream(jsm, PIPELINE_ENGINE_STREAM)) {
    const event = JSON.parse(new TextDecoder().decode(m.data)) as {
      run_id: string;
      driverresult: StoredResult;
    };
    const { success, message } = event.driverresult;
    byRun.set(event.run_id, [...(byRun.get(event.run_id) ?? []), { success, message }]);
  }
  return byRun;
}

/** Stored dead-letter records by the `messages` sequence they name: how many, and the first one's reason. */
export async function storedDeadLetters(
  jsm: JetStreamManager,
): Promise<Map<number, { count: number; reason: string }>> {
  const bySeq = new Map<number, { count: number; reason: string }>();
  for (const m of await readStream(jsm, DEAD_LETTER_STREAM)) {
    const seq = Number(m.header.get(DEAD_LETTER_HEADERS.streamSequence));
    const reason = m.header.get(DEAD_LETTER_HEADERS.reason);
    bySeq.set(seq, { count: (bySeq.get(seq)?.count ?? 0) + 1, reason: bySeq.get(seq)?.reason ?? reason });
  }
  return bySeq;
}
