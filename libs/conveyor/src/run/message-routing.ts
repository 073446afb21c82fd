import type { MessageHandler } from '@nestjs/microservices';
import { DecodedMessage, MalformedMessageError, MessageRoute, decodeDriverMessage } from '../protocol';
import type { ReconcileHandlerMeta } from '../reconcile/reconcile.decorator';
import type { ResultTarget } from '../settlement/result.publisher';
import type { MessageOutcome } from '../settlement/settlement.policy';
import type { InboundMessage } from './message-port';
import type { RunEnvironment } from './run-environment';

/** A message with a handler to run. */
export interface RoutedMessage {
  kind: 'handler';
  decoded: DecodedMessage;
  route: MessageRoute;
  meta: ReconcileHandlerMeta;
  handler: MessageHandler;
  target: ResultTarget;
}

/** A message that ends without a handler run: how (its owner decides what follows). */
export interface DecidedMessage {
  kind: 'decided';
  outcome: MessageOutcome;
  /** Set when the run is known, so a failure result can still reach its pipeline. */
  target?: ResultTarget;
}

/** Decodes a message once and finds its handler, or says why it has none. */
export function routeMessage(env: RunEnvironment, message: InboundMessage): RoutedMessage | DecidedMessage {
  const driver = env.config.driverName;
  let decoded: DecodedMessage;
  try {
    decoded = decodeDriverMessage(message.data);
  } catch (err) {
    if (!(err instanceof MalformedMessageError)) throw err;
    const { reason, runId, resource } = err;
    const outcome: MessageOutcome = { kind: 'undecodable', reason, runId, resource };
    // No message id to de-duplicate on: the stream sequence is as unique.
    const target =
      runId && resource
        ? { runId, resource, msgId: `${runId}:${driver}:seq${message.streamSequence}` }
        : undefined;
    return { kind: 'decided', outcome, target };
  }
  const runId = decoded.message.run_id;
  // `{run}:{driver}:{message id}`: a result published again after a lost PubAck is stored once. The
  // result carries the payload text as received; the handler gets the one parsed object as its own.
  const target = { runId, resource: decoded.payload, msgId: `${runId}:${driver}:${decoded.message.id}` };
  const routing = env.registry.route(message.subject, decoded.message.event);
  if (routing.kind === 'settle') {
    return { kind: 'decided', outcome: routing.outcome, target };
  }
  return {
    kind: 'handler',
    decoded,
    route: routing.route,
    meta: routing.meta,
    handler: routing.handler,
    target,
  };
}
