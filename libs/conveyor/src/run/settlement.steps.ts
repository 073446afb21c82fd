import { MESSAGES_STREAM } from '../protocol';
import type { MessageOutcome, Settlement } from '../settlement/settlement.policy';
import type { InboundMessage } from './message-port';
import type { RunEnvironment } from './run-environment';
import { abortable } from '../util/abortable';

/**
 * Hands the message to the dead-letter sinks; when one fails, terminating would lose the only copy,
 * so the message is kept (nak'd) for another try instead.
 */
export async function deadLetterOrKeep(
  env: RunEnvironment,
  message: InboundMessage,
  settlement: Settlement,
  known: { runId?: string; noResult?: string },
): Promise<Settlement> {
  const { deadLetterTimeoutMs } = env.config;
  const recording = env.port.deadLetter({
    reason: settlement.reason,
    driver: env.config.driverName,
    subject: message.subject,
    stream: message.stream || MESSAGES_STREAM,
    streamSequence: message.streamSequence,
    deliveryCount: message.deliveryCount,
    payload: message.data,
    runId: known.runId,
    failedAt: new Date().toISOString(),
    ...(known.noResult ? { noResult: known.noResult } : {}),
  });
  // A hook that never settles must not hold the run (nor what the session may pull) or shutdown.
  let why: string;
  try {
    const recorded = await abortable(recording, env.deadline, deadLetterTimeoutMs);
    if (recorded.ended === 'done' && recorded.value) return settlement;
    if (recorded.ended !== 'done')
      env.stuck.track(
        `the dead-letter record of stream seq ${message.streamSequence} (onDeadLetter or its subject)`,
        recording.catch(() => undefined),
      );
    why =
      recorded.ended === 'done'
        ? 'not stored'
        : recorded.ended === 'timed-out'
          ? `not recorded within deadLetterTimeoutMs (${deadLetterTimeoutMs} ms)`
          : 'not recorded by the shutdown deadline';
  } catch (err) {
    why = `not recorded (${errorText(err)})`;
  }
  return {
    kind: 'retried',
    action: 'nak',
    delayMs: env.config.retryDelayMs(message.deliveryCount),
    reason: `dead-letter record ${why}, kept for another try: ${settlement.reason}`,
    level: 'error',
  };
}

export function runIdOf(outcome: MessageOutcome | undefined): string | undefined {
  return outcome?.kind === 'undecodable' ? outcome.runId : undefined;
}

/** Why a dead-lettered message got no failure result, for the record. */
export function noResultReason(outcome: MessageOutcome | undefined, settlement: Settlement): string {
  if (outcome?.kind === 'undecodable') {
    return outcome.runId === undefined
      ? 'the run id is unreadable: no result can name the run'
      : "the resource's name and type are unreadable: the engine could not match a result";
  }
  return settlement.reason;
}

/** Sends the final verb; a failed verb only means a redelivery after AckWait (a duplicate, never a loss). */
export function sendVerb(message: InboundMessage, settlement: Settlement, env: RunEnvironment): void {
  try {
    if (settlement.action === 'ack') message.ack();
    else if (settlement.action === 'nak') message.nak(settlement.delayMs);
    else message.term(settlement.reason.slice(0, 1024));
  } catch (err) {
    env.logger.warn(
      `${settlement.action} of stream seq ${message.streamSequence} failed: ${(err as Error).message}`,
    );
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A thrown error's text can carry a secret: the server persists results in `driverresults.*`. */
export function maskSettlement(settlement: Settlement, mask: (text: string) => string): Settlement {
  const message = settlement.result?.message;
  const reason = mask(settlement.reason);
  if (message === undefined && reason === settlement.reason) return settlement;
  return {
    ...settlement,
    reason,
    ...(settlement.result ? { result: { ...settlement.result, message: mask(message ?? '') } } : {}),
  };
}
