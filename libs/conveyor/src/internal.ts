/**
 * `@conveyor-ci/nestjs/internal`: what `@conveyor-ci/testing` needs to drive the real message path
 * (the wire contract's codec and subjects, the strategy, the log shipper). Not public API: it may
 * change in any release. Driver code imports `@conveyor-ci/nestjs`.
 * @internal
 */
export * from './protocol';
export { ConveyorModule } from './module/conveyor.module';
export { CONVEYOR_CONFIG } from './module/conveyor.constants';
export type { ConveyorConfig, ConveyorModuleOptions } from './module/conveyor.options';
export type { ReconcileContext } from './reconcile/reconcile-context';
export type { MessageOutcome, Settlement } from './settlement/settlement.policy';
export type { DeadLetterRecord } from './settlement/dead-letter';
export type { InboundMessage, ResultPort } from './run/message-port';
export { ConveyorStrategy } from './transport/conveyor.strategy';
export { prepareReconcileHandlers } from './transport/connect-conveyor';
export { LogShipper } from './logger/log-shipper';
export { RunCancellations } from './run-control/run-cancellations';
export { MemoryLeaseStore, type LeaseStore } from './run-control/resource-leases';
export { PopTokenSigner } from './security/pop-token.signer';
