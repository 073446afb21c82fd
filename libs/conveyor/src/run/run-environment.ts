import type { LoggerService } from '@nestjs/common';
import type { MessageHandler } from '@nestjs/microservices';
import type { LogShipper } from '../logger/log-shipper';
import type { ConveyorConfig } from '../module/conveyor.options';
import type { DecodedMessage, MessageRoute } from '../protocol';
import type { ReconcileHandlerRegistry } from '../reconcile/reconcile-handler.registry';
import type { ReconcileInvocation } from '../reconcile/reconcile-runner';
import type { MessageOutcome, Settlement } from '../settlement/settlement.policy';
import type { ResultPort } from './message-port';
import type { RunObservers } from './run-events';
import type { RunLineFacts } from './run-line';
import type { RunSlots } from './run-slots';
import type { StuckWork } from './stuck-work';

/** What the consumer session last sampled of the live consumer. */
export interface LiveConsumer {
  /** `max_deliver` (-1 or 0: unlimited): the server stops redelivering past it. */
  maxDeliver: number;
  /** About half the consumer's AckWait. */
  heartbeatMs: number;
}

/** Everything a {@link MessageRun} needs besides its message: shared by every run of a transport. */
export interface RunEnvironment {
  config: ConveyorConfig;
  registry: ReconcileHandlerRegistry<MessageHandler>;
  logger: LoggerService;
  logs: LogShipper;
  observers: RunObservers;
  slots: RunSlots;
  port: ResultPort;
  consumer: () => LiveConsumer;
  /** Runs a handler call inside Nest's processing hooks (OpenTelemetry instrumentations use them). */
  around?: ReconcileInvocation['around'];
  /** The stale-event guard, when enabled: an outcome that ends the message before its handler runs. */
  checkStale?: (decoded: DecodedMessage, route: MessageRoute) => Promise<MessageOutcome | undefined>;
  /** The reason a cancel for run `runId` was requested, if one is remembered (run control). */
  cancelReasonOf?: (runId: string) => string | undefined;
  /** Aborted when shutdown begins: runs still waiting for a slot stop waiting (shared by every run). */
  stopWaiting: AbortSignal;
  /** Aborted at the shutdown deadline (shared by every run). */
  deadline: AbortSignal;
  /** Counts, logs and reports a message's final row: called once per message (facts asked lazily). */
  record(settlement: Settlement, facts: () => RunLineFacts): void;
  /** A message no handler serves was nak'd (`held`) or let go (`released`): the held gauge. */
  unrouted(streamSequence: number, held: boolean, delayMs?: number): void;
  /** Work left behind past its deadline (hung hooks, handlers ignoring their signal), for readiness. */
  stuck: StuckWork;
  /** Messages held here waiting for a resource lease, and how many may be (the rest are nak'd). */
  leaseWaits: { held: number; limit: number };
}
