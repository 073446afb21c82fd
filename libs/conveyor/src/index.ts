/**
 * Public API of `@conveyor-ci/nestjs`: what a driver author uses, grouped by role. Everything else
 * is internal and may change in any release. Health (`@conveyor-ci/nestjs/health`) and metrics
 * (`@conveyor-ci/nestjs/metrics`) are subpaths, so their optional peers are needed only there; the
 * testing utilities are `@conveyor-ci/testing`. A new value export is also listed in
 * `public-api.spec.ts`, so that the surface grows only on purpose.
 * @packageDocumentation
 * @module @conveyor-ci/nestjs
 */

// Module and options: import ConveyorModule, configure it, attach the transport in main.ts.
export { ConveyorModule } from './module/conveyor.module';
export { connectConveyor } from './transport/connect-conveyor';
export type {
  AckMode,
  ConsumerFilterPolicy,
  ConveyorModuleOptions,
  ConveyorTlsOptions,
  IncompatibleConsumerPolicy,
  RetryBackoff,
} from './module/conveyor.options';
export type { ConveyorLogOptions, ConveyorLokiOptions } from './module/log.options';
export type { ConveyorNatsAuthOptions } from './module/nats-auth.options';
export type { ConveyorApiAuthOptions } from './module/api-auth.options';
export type { DeadLetterRecord } from './settlement/dead-letter';
export { DEAD_LETTER_HEADERS } from './settlement/dead-letter';
export { deleteDriverConsumer } from './transport/consumer-binding';

// Decorators and context: a handler, what it receives and what it returns.
export { Reconcile, type PerResourcePolicy, type ReconcileOptions } from './reconcile/reconcile.decorator';
export type { SpecOf, SpecValidator, SpecViolation } from './resources/spec-validator';
export { ReconcileContext, isConveyorContext } from './reconcile/reconcile-context';
export type {
  ConveyorLog,
  DriverResult,
  DriverResultEvent,
  Pipeline,
  PipelineEvent,
  PipelineStep,
  Resource,
  ResourceDefinition,
  ResourceMetadata,
} from './protocol';
export { previousResult, resourceVersion } from './client/driver-results';

// Errors: what a handler throws to ask for a retry, and what the runtime and the client throw.
export { RetryableError, type RetryableErrorOptions } from './settlement/retryable.error';
export { RunCancelledError } from './reconcile/reconcile-runner';
export { ConveyorConfigError } from './module/conveyor.options';
export { DuplicateReconcileHandlerError } from './reconcile/reconcile-handler.registry';
export { ConsumerBindingError } from './transport/consumer-binding';
export {
  ConveyorApiError,
  ConveyorApiOutcomeUnknownError,
  ConveyorAuthorizationError,
} from './client/conveyor-api.error';
export { InvalidApiNameError } from './client/api-paths';
export { InvalidSubjectTokenError } from './protocol';

// Logger: `DriverLogger` anywhere (it finds the current run), `ctx.logger` inside a handler.
export { DriverLogger } from './logger/driver-logger';
export type { RunLogger, LogFields } from './logger/run-logger';
export type { LogStreamOptions as LoggerStreamOptions } from './logger/run-logger';
export type { LogStats, RunLogCounts } from './logger/log-shipper';
export type { SinkStats, DropReason } from './logger/log-entry';

// Client: the Conveyor HTTP API, its live log streams and its proof-of-possession signer.
export { ConveyorClient } from './client/conveyor.client';
export type { ApiHealth, BroadcastMessage, CreatedResource, LogQuery } from './client/conveyor.client';
export { ConveyorClientModule } from './client/conveyor-client.module';
export type { ApiCallOptions } from './client/api-request';
export { LogStream, type LiveLogOptions } from './client/log-stream';
export type { AuthorizationProvider, ConveyorClientOptions } from './module/client.options';
export { PopTokenSigner } from './security/pop-token.signer';

// Run control: cancel, progress, cleanup; the transport's state for probes and dashboards.
export { RunControl, NatsUnavailableError } from './run-control/run-control';
export { publishCancel, progressReports } from './run-control/run-control.nats';
export type { RunEnding, CleanupHook, CleanupOptions } from './run-control/run-cleanup';
export type { ProgressValue } from './run-control/run-progress';
export type { RunCancelRequest, RunProgress } from './protocol';
export type { ConveyorStrategy } from './transport/conveyor.strategy';
export type {
  ConveyorReadiness,
  ConveyorTransportEvent,
  ConveyorTransportEvents,
  ConveyorTransportState,
} from './transport/conveyor-transport.types';
export type { NatsLinkStatus } from './transport/nats-link';
export type { DispatchStats } from './run/message-runs';

// Driver registry: the live replicas of every driver (bucket `conveyor-drivers`), for consoles and tools.
export { DriverRegistry } from './registry/driver-registry';
export {
  DRIVER_REGISTRY_BUCKET,
  type DriverRegistryEntry,
  type LiveDriverInstance,
} from './registry/driver-registry.entry';

// Console: the run console page, mountable in a driver app (off by default).
export { ConveyorConsoleModule, type ConveyorConsoleOptions } from './console/conveyor-console.module';

// Testing hooks: what `@conveyor-ci/testing` reports about a run, and observers of the transport.
export type {
  MessageOutcome,
  ReconcileOutcome,
  Settlement,
  SettlementKind,
} from './settlement/settlement.policy';
export type { RunObserver } from './run/run-events';

// Deprecated names, kept for one release.
import type { LogStreamOptions as LoggerStreamOptionsOf } from './logger/run-logger';
/** @deprecated Renamed {@link LoggerStreamOptions} (the options of `logger.stream()`, not of {@link LogStream}). */
export type LogStreamOptions = LoggerStreamOptionsOf;
