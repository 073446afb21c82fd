import { resourceLeaseKey } from '../protocol';
import type { ResourceLease } from '../run-control/resource-leases';
import type { MessageOutcome } from '../settlement/settlement.policy';
import { abortable } from '../util/abortable';
import type { InboundMessage } from './message-port';
import type { RoutedMessage } from './message-routing';
import type { RunEnvironment } from './run-environment';
import type { RunEvent } from './run-states';
import type { SlotRelease } from './run-slots';

/** How soon an event nak'd because too many events already wait for leases asks again. */
export const SERIALIZE_WAIT_MS = 1000;
/** The longest a lease operation (take, cancel the holder) may hold a run before it gives up. */
export const LEASE_OP_TIMEOUT_MS = 5000;

/** What a run may hold while its handler runs: one owner releases all of it, once. */
export class Admission {
  private slots?: SlotRelease;
  private lease?: ResourceLease;

  constructor(slots: SlotRelease, lease?: ResourceLease) {
    this.slots = slots;
    this.lease = lease;
  }

  /**
   * The handler has really let go: its slots go back now, so the next message is pulled while this
   * one's result publishes. The lease stays until {@link release}: the next run of the resource
   * starts after this one's verb.
   */
  handlerLetGo(): void {
    this.slots?.();
    this.slots = undefined;
  }

  /**
   * Gives back everything still held (bounded in time; never rejects). Idempotent. Nothing to wait
   * for (no promise, no tick on the message path) when the run held no lease.
   */
  release(): Promise<void> | undefined {
    this.handlerLetGo();
    const lease = this.lease;
    this.lease = undefined;
    return lease?.release();
  }
}

/** Admitted with what the run holds, or decided without a handler run (nothing held; the run's `decided` event is the caller's). */
export type AdmissionResult =
  { kind: 'admitted'; admission: Admission } | { kind: 'decided'; outcome: MessageOutcome };

/** What the admission needs of its run besides the environment. */
export interface AdmissionRun {
  routed: RoutedMessage;
  message: InboundMessage;
  /** Earlier deliveries of the message that were nak'd only to wait for the lease. */
  leaseWaits: number;
  /** Aborted by a cancel of this run or by shutdown: every wait ends at once. */
  signal: AbortSignal;
  /** The reason of a cancel of this run, once there is one. */
  cancelled: () => string | undefined;
  /** The run moves through its states as admission goes. */
  transition: (event: RunEvent) => void;
}

/**
 * Admits a run: its handler's slot, an instance slot, then (with `perResource`) its resource's
 * lease, in that order. A lease held by another run gives the slots back and waits for the lease
 * to free, holding the message (heartbeated): a wait is no delivery, so it spends no attempt and
 * nears no `max_deliver`. A cancel or shutdown ends every wait at once. Whatever fails on the way
 * gives back what was taken before it returns; on `admitted`, the caller owns the {@link Admission}.
 */
export async function admitRun(env: RunEnvironment, run: AdmissionRun): Promise<AdmissionResult> {
  const { routed, message, signal } = run;
  for (;;) {
    const slots = await env.slots.takeBoth(routed.meta, signal, run.transition);
    const cancelled = run.cancelled() ?? env.cancelReasonOf?.(routed.target.runId);
    if (cancelled !== undefined) {
      slots?.();
      return { kind: 'decided', outcome: { kind: 'cancelled', reason: cancelled } };
    }
    if (!slots) return { kind: 'decided', outcome: { kind: 'not-started' } };
    if (!routed.meta.perResource) return { kind: 'admitted', admission: new Admission(slots) };
    let busy: LeaseBusy;
    try {
      const taken = await takeLease(env, routed, message);
      if (taken.kind === 'acquired') {
        if (run.leaseWaits > 0) void leaseWaitCount(env, message, 'forgetWaits');
        return { kind: 'admitted', admission: new Admission(slots, taken.lease) };
      }
      if (taken.kind === 'decided') {
        slots();
        return taken;
      }
      busy = taken;
    } catch (err) {
      slots();
      throw err;
    }
    slots();
    // Shutdown began while the lease was asked for: not a time to start waiting.
    if (env.stopWaiting.aborted) return { kind: 'decided', outcome: { kind: 'not-started' } };
    run.transition('lease-busy');
    const waited = await waitForLease(env, busy, signal);
    if (!waited) {
      // Too many wait here already: nak'd, and counted where any replica it comes back to looks.
      await leaseWaitCount(env, message, 'countWait');
      return { kind: 'decided', outcome: busy.outcome };
    }
    // Freed, expired, or the wait was cut short (a cancel, shutdown): the next round tells which.
    run.transition('lease-may-be-free');
  }
}

/**
 * Earlier deliveries of a `perResource` message that only waited for its lease (nak'd when too
 * many waited here): they are no attempt of its handler. 0 on a first delivery, and when the store
 * cannot say in time (then the waits count as attempts: never more attempts than allowed). A
 * plain number, with no promise or tick, for any message that cannot have waited.
 */
export function countedLeaseWaits(
  env: RunEnvironment,
  routed: RoutedMessage,
  message: InboundMessage,
): number | Promise<number> {
  if (!routed.meta.perResource || message.deliveryCount <= 1) return 0;
  const reading = env.port.leases.waitsOf(env.config.driverName, message.streamSequence);
  return abortable(reading, undefined, LEASE_OP_TIMEOUT_MS).then(
    (read) => (read.ended === 'done' ? Math.min(read.value, message.deliveryCount - 1) : 0),
    () => 0,
  );
}

/** Counts a wait, or forgets the waits, of a message; bounded, never throws (a lost count costs an attempt). */
async function leaseWaitCount(
  env: RunEnvironment,
  message: InboundMessage,
  op: 'countWait' | 'forgetWaits',
): Promise<void> {
  const writing = env.port.leases[op](env.config.driverName, message.streamSequence);
  await abortable(writing, undefined, LEASE_OP_TIMEOUT_MS).catch(() => undefined);
}

interface LeaseBusy {
  kind: 'busy';
  key: string;
  expiresAt: number;
  /** Set when the entry is foreign (another tool or version wrote it): who waits on what, for readiness. */
  foreign?: string;
  /** What the message gets when it cannot wait here (too many waiting): nak'd, to come back later. */
  outcome: MessageOutcome;
}

/** One try for the resource's lease; a `supersede`d holder is cancelled on the way. */
async function takeLease(
  env: RunEnvironment,
  routed: RoutedMessage,
  message: InboundMessage,
): Promise<
  { kind: 'acquired'; lease: ResourceLease } | LeaseBusy | { kind: 'decided'; outcome: MessageOutcome }
> {
  const policy = routed.meta.perResource!;
  const { resource, message: driverMessage } = routed.decoded;
  const key = resourceLeaseKey(env.config.driverName, resource.resource, resource.name);
  const what = `${resource.resource}/${resource.name}`;
  let attempt;
  try {
    const taking = env.port.leases.acquire(key, {
      run_id: driverMessage.run_id,
      message_id: driverMessage.id,
      stream_seq: message.streamSequence,
      renewed_at: new Date().toISOString(),
    });
    attempt = await abortable(taking, undefined, LEASE_OP_TIMEOUT_MS);
  } catch (err) {
    attempt = { ended: 'failed' as const, error: err as Error };
  }
  if (attempt.ended !== 'done') {
    // The bucket is unreachable: try again later, as when the stale-event guard cannot reach the API.
    const why =
      attempt.ended === 'failed' ? attempt.error.message : `no answer within ${LEASE_OP_TIMEOUT_MS} ms`;
    return {
      kind: 'decided',
      outcome: { kind: 'lookup-failed', reason: `cannot take the lease of ${what}: ${why}` },
    };
  }
  const taken = attempt.value;
  if (taken.kind === 'acquired') return taken;
  const holder = taken.holder;
  if (policy === 'supersede' && holder) {
    if (holder.stream_seq > message.streamSequence) {
      return {
        kind: 'decided',
        outcome: { kind: 'cancelled', reason: `superseded by run ${holder.run_id}` },
      };
    }
    if (holder.run_id !== driverMessage.run_id) {
      const cancelling = env.port.cancelRun(holder.run_id, `superseded by run ${driverMessage.run_id}`);
      const cancel = await abortable(cancelling, undefined, LEASE_OP_TIMEOUT_MS).catch((err: Error) => ({
        ended: err.message,
      }));
      if (cancel.ended !== 'done')
        env.logger.warn(
          `cannot cancel run ${holder.run_id} holding ${what} (${cancel.ended}): waiting for it`,
        );
    }
  }
  const holderRunId = holder?.run_id ?? 'unknown (a foreign entry: it frees itself by the TTL)';
  return {
    kind: 'busy',
    key,
    expiresAt: taken.expiresAt,
    foreign:
      holder || taken.contended
        ? undefined
        : `run ${driverMessage.run_id} waits for the lease of ${what}: held by an entry another tool or version wrote, until it expires`,
    outcome: { kind: 'resource-busy', resource: what, holderRunId, delayMs: SERIALIZE_WAIT_MS },
  };
}

/** Waits for the lease to free; false, without waiting, when too many messages wait already. */
async function waitForLease(env: RunEnvironment, busy: LeaseBusy, signal: AbortSignal): Promise<boolean> {
  const waits = env.leaseWaits;
  if (waits.held >= waits.limit) return false;
  waits.held += 1;
  try {
    const waiting = env.port.leases.waitForRelease(busy.key, busy.expiresAt, signal);
    if (busy.foreign) env.stuck.track(busy.foreign, waiting);
    await waiting;
    return true;
  } finally {
    waits.held -= 1;
  }
}
