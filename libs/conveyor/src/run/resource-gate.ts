import type { MessageOutcome } from '../settlement/settlement.policy';
import { resourceLeaseKey } from '../protocol';
import type { LeaseAttempt, ResourceLease } from '../run-control/resource-leases';
import type { InboundMessage } from './message-port';
import type { RoutedMessage } from './message-routing';
import type { RunEnvironment } from './run-environment';

/** How soon a `serialize`d event asks again for a resource another run holds. */
export const SERIALIZE_WAIT_MS = 1000;
/** How soon a superseding event asks again, once it has cancelled the older run. */
export const SUPERSEDE_WAIT_MS = 250;

/**
 * `@Reconcile({ perResource })`: the run may start only with its resource's lease. Without one,
 * `serialize` waits its turn; `supersede` cancels the older run holding it (or, when this event is the
 * older one, is superseded itself) and then waits for the lease to free.
 * @returns the lease to release after the final verb, or the outcome that ends the message now.
 */
export async function takeResourceLease(
  env: RunEnvironment,
  routed: RoutedMessage,
  message: InboundMessage,
): Promise<{ lease?: ResourceLease; outcome?: MessageOutcome }> {
  const policy = routed.meta.perResource;
  if (!policy) return {};
  const { resource, message: driverMessage } = routed.decoded;
  const key = resourceLeaseKey(env.config.driverName, resource.resource, resource.name);
  let attempt: LeaseAttempt;
  try {
    attempt = await env.port.leases.acquire(key, {
      run_id: driverMessage.run_id,
      message_id: driverMessage.id,
      stream_seq: message.streamSequence,
      renewed_at: new Date().toISOString(),
    });
  } catch (err) {
    // The bucket is unreachable: try again later, as when the stale-event guard cannot reach the API.
    return {
      outcome: { kind: 'lookup-failed', reason: `cannot take the resource lease: ${(err as Error).message}` },
    };
  }
  if (attempt.kind === 'acquired') return { lease: attempt.lease };
  const holder = attempt.holder;
  const what = `${resource.resource}/${resource.name}`;
  if (policy === 'supersede') {
    if (holder.stream_seq > message.streamSequence) {
      return { outcome: { kind: 'cancelled', reason: `superseded by run ${holder.run_id}` } };
    }
    if (holder.run_id !== driverMessage.run_id) {
      await env.port.cancelRun(holder.run_id, `superseded by run ${driverMessage.run_id}`);
    }
  }
  const delayMs = policy === 'supersede' ? SUPERSEDE_WAIT_MS : SERIALIZE_WAIT_MS;
  return { outcome: { kind: 'resource-busy', resource: what, holderRunId: holder.run_id, delayMs } };
}
