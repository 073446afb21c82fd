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

/** Stored results per run id, and whether each one reported success. */
export async function storedResults(jsm: JetStreamManager): Promise<Map<string, boolean[]>> {
  const byRun = new Map<string, boolean[]>();
  for (const m of await readStream(jsm, PIPELINE_ENGINE_STREAM)) {
    const event = JSON.parse(new TextDecoder().decode(m.data)) as {
      run_id: string;
      driverresult: { success: boolean };
    };
    byRun.set(event.run_id, [...(byRun.get(event.run_id) ?? []), event.driverresult.success]);
  }
  return byRun;
}

/** Stored dead-letter records: the `messages` sequences and run ids they name. */
export async function storedDeadLetters(
  jsm: JetStreamManager,
): Promise<{ seqs: Map<number, number>; runIds: Set<string> }> {
  const seqs = new Map<number, number>();
  const runIds = new Set<string>();
  for (const m of await readStream(jsm, DEAD_LETTER_STREAM)) {
    const seq = Number(m.header.get(DEAD_LETTER_HEADERS.streamSequence));
    seqs.set(seq, (seqs.get(seq) ?? 0) + 1);
    const runId = m.header.get(DEAD_LETTER_HEADERS.runId);
    if (runId) runIds.add(runId);
  }
  return { seqs, runIds };
}
