import type { ConveyorClient } from '../client/conveyor.client';
import type { DecodedMessage, MessageRoute } from '../protocol';
import type { MessageOutcome } from '../settlement/settlement.policy';

/**
 * The stale-event guard (the newer Go runtime's check, contract §15): before a pipeline step runs,
 * look the resource up. Deleted (not found), replaced (another `id`) or being deleted
 * (`metadata.deleting`) means the step would act on something that no longer exists: skip it.
 * Direct resource events are not checked: they are how a resource announces itself.
 * @returns the outcome that ends the message, or undefined when the step should run.
 */
export async function checkStaleEvent(
  client: ConveyorClient,
  decoded: DecodedMessage,
  route: MessageRoute,
): Promise<MessageOutcome | undefined> {
  if (route.kind !== 'pipeline-step') return undefined;
  const pending = decoded.resource;
  let current;
  try {
    current = await client.getResource(pending.resource, pending.name);
  } catch (err) {
    return { kind: 'lookup-failed', reason: `stale-event check failed: ${(err as Error).message}` };
  }
  const what = `${pending.resource} "${pending.name}"`;
  if (!current) return { kind: 'stale', reason: `${what} was deleted since the event: step skipped` };
  if (pending.id && current.id && current.id !== pending.id) {
    return {
      kind: 'stale',
      reason: `${what} was replaced (id ${current.id}, event for ${pending.id}): step skipped`,
    };
  }
  const deleting = current.metadata?.deleting;
  if (deleting === true || deleting === 'true') {
    return { kind: 'stale', reason: `${what} is being deleted: step skipped` };
  }
  return undefined;
}
