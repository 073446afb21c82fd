/**
 * Public API of @conveyor-ci/nestjs: only what driver authors need. Internals stay importable by
 * path for the project's own tests, not through this barrel.
 */
export { ConveyorModule } from './module/conveyor.module';
export { ConveyorHealthModule } from './health/conveyor-health.module';
export { ConveyorMetricsModule, type ConveyorMetricsOptions } from './metrics/conveyor-metrics.module';
export { CONVEYOR_METRICS_REGISTRY } from './metrics/conveyor-metrics.constants';
export type { RunObserver } from './run/run-events';
export { ConveyorClient } from './client/conveyor.client';
export { ConveyorApiError } from './client/conveyor-api.error';
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
export { ResultRefusedError } from './run/message-port';
export { RetryableError, type RetryableErrorOptions } from './reconcile/retryable.error';
export { DEAD_LETTER_HEADERS, type DeadLetterRecord } from './settlement/dead-letter';
export type {
  MessageOutcome,
  ReconcileOutcome,
  Settlement,
  SettlementKind,
} from './settlement/settlement.policy';
export { Reconcile, type ReconcileOptions } from './reconcile/reconcile.decorator';
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
  type PipelineEvent,
  type Resource,
} from './protocol';
export { PopTokenSigner, popAlgorithmOf } from './security/pop-token.signer';
export { SecretRedactor, redactText, redactUrl } from './security/redact';
export type { ConveyorNatsAuthOptions, NatsAuthConfig } from './module/nats-auth.options';
export type { ConveyorApiAuthOptions, ApiAuthConfig } from './module/api-auth.options';
