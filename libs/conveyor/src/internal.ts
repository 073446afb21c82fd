/**
 * Not part of the API: `@conveyor-ci/nestjs/internal` exists so that `@conveyor-ci/testing` (and
 * this repository's own tests and bench) can drive the real message path: the wire contract's
 * codec, subjects and stream names, the strategy, the log shipper, the resolved configuration.
 * It is left undocumented on purpose and may change in any release, with no deprecation; driver
 * code imports `@conveyor-ci/nestjs`. (It stays a package subpath because the testing package is
 * installed as a separate tarball and must resolve it, types included, through the package's
 * `exports`.)
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
export { resolveConveyorConfig } from './module/conveyor.options';
export { ResultRefusedError } from './settlement/result.publisher';
export { queryLokiLogs, subscribeRunLogs, type LokiLogLine, type LokiQuery } from './logger/log-reader';
export { popAlgorithmOf } from './security/pop-token.signer';
export { ConsoleTracker, type ConsoleSources, type ConsoleState } from './console/console-tracker';
export { handleConsoleRequest, type ConsoleRequest, type ConsoleResponse } from './console/console-http';
export { CONSOLE_PAGE_BYTES } from './console/console-page';
export { abortable } from './util/abortable';
