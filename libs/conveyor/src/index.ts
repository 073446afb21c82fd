/**
 * Public API of @conveyor-ci/nestjs: only what driver authors need. Internals stay importable by
 * path for the project's own tests, not through this barrel. Health (`@conveyor-ci/nestjs/health`)
 * and metrics (`@conveyor-ci/nestjs/metrics`) are subpaths: their optional peers are needed only there.
 */
export { ConveyorModule } from './module/conveyor.module';
export type { RunObserver } from './run/run-events';
export {
  ConveyorClient,
  type ApiHealth,
  type BroadcastMessage,
  type CreatedResource,
  type LogQuery,
} from './client/conveyor.client';
export { ConveyorClientModule } from './client/conveyor-client.module';
export {
  ConveyorApiError,
  ConveyorApiOutcomeUnknownError,
  ConveyorAuthorizationError,
} from './client/conveyor-api.error';
export { InvalidApiNameError } from './client/api-paths';
export type { ApiCallOptions } from './client/api-request';
export { LogStream, type LiveLogOptions } from './client/log-stream';
export { previousResult } from './client/driver-results';
export type {
  AuthorizationProvider,
  ConveyorClientConfig,
  ConveyorClientOptions,
} from './module/client.options';
export { CONVEYOR_CONFIG } from './module/conveyor.constants';
export {
  ConveyorConfigError,
  resolveConveyorConfig,
  type AckMode,
  type ConveyorConfig,
  type ConveyorModuleOptions,
  type ConveyorTlsOptions,
  type IncompatibleConsumerPolicy,
  type ConsumerFilterPolicy,
  type RetryBackoff,
} from './module/conveyor.options';
export { connectConveyor } from './transport/connect-conveyor';
export { ConveyorStrategy } from './transport/conveyor.strategy';
export type {
  ConveyorTransportState,
  ConveyorReadiness,
  ConveyorTransportEvent,
  ConveyorTransportEvents,
} from './transport/conveyor-transport.types';
export type { NatsLinkStatus } from './transport/nats-link';
export { ConsumerBindingError, deleteDriverConsumer } from './transport/consumer-binding';
export type { DispatchStats } from './run/message-runs';
export { ResultRefusedError } from './settlement/result.publisher';
export { RetryableError, type RetryableErrorOptions } from './settlement/retryable.error';
export { DEAD_LETTER_HEADERS, type DeadLetterRecord } from './settlement/dead-letter';
export type {
  MessageOutcome,
  ReconcileOutcome,
  Settlement,
  SettlementKind,
} from './settlement/settlement.policy';
export { RunControl, NatsUnavailableError } from './run-control/run-control';
export { publishCancel, progressReports } from './run-control/run-control.nats';
export type { RunEnding, CleanupHook, CleanupOptions } from './run-control/run-cleanup';
export type { ProgressValue } from './run-control/run-progress';
export { RunCancelledError } from './reconcile/reconcile-runner';
export { Reconcile, type PerResourcePolicy, type ReconcileOptions } from './reconcile/reconcile.decorator';
export { ReconcileContext, isConveyorContext } from './reconcile/reconcile-context';
export { DuplicateReconcileHandlerError } from './reconcile/reconcile-handler.registry';
export { CONVEYOR_TRANSPORT } from './reconcile/reconcile.constants';
export type { RunLogger, LogFields, LogStreamOptions } from './logger/run-logger';
export { DriverLogger } from './logger/driver-logger';
export { queryLokiLogs, subscribeRunLogs, type LokiLogLine, type LokiQuery } from './logger/log-reader';
export type { LogStats } from './logger/log-shipper';
export type { SinkStats, DropReason } from './logger/log-entry';
export type { ConveyorLogOptions, ConveyorLokiOptions } from './module/log.options';
export {
  MESSAGES_STREAM,
  LOGS_ENGINE_STREAM,
  RESULT_SUBJECT,
  InvalidSubjectTokenError,
  isSubjectToken,
  type ConveyorLog,
  type DriverMessage,
  type DriverResult,
  type DriverResultEvent,
  type Pipeline,
  type PipelineEvent,
  type PipelineStep,
  type Resource,
  RUN_CONTROL_PREFIX,
  RUN_CANCELS_BUCKET,
  cancelSubject,
  progressSubject,
  type RunCancelRequest,
  type RunProgress,
  type ResourceDefinition,
} from './protocol';
export { PopTokenSigner, popAlgorithmOf } from './security/pop-token.signer';
export { SecretRedactor, redactText, redactUrl } from './security/redact';
export type { ConveyorNatsAuthOptions, NatsAuthConfig } from './module/nats-auth.options';
export type { ConveyorApiAuthOptions, ApiAuthConfig } from './module/api-auth.options';
