export {
  NatsServer,
  PortInUseError,
  findNatsServer,
  freePort,
  natsServerVersion,
  MIN_NATS_SERVER_VERSION,
  type NatsServerOptions,
} from './nats-server.harness';
export { NatsCluster, type NatsClusterNode, type NatsClusterOptions } from './nats-cluster.harness';
export {
  createConveyorStreams,
  makeResource,
  publishDriverMessage,
  waitForConsumer,
  consumerBacklog,
  waitForSettled,
  ConveyorTestEnv,
  ResultCollector,
  type PublishedEvent,
} from './conveyor-nats';
export { registerSpawned } from './process-registry';
export { DriverProcess, isProcessAlive, waitForExit, type DriverLine } from './driver-process';
export {
  ConveyorTestingModule,
  type ConveyorTestingModuleOptions,
  type ConveyorTestingModuleBuilder,
  type ConveyorOverrideBy,
  type ConveyorOverrideModule,
  type OverridableModule,
  type ReconcileTestMessage,
  type ReconcileTestRun,
} from './conveyor-testing.module';
export type { HeldResultPublish } from './in-memory.port';
export { NatsFaultProxy, type ProxiedMessage } from './nats-fault-proxy';
export { ConveyorApiServer } from './conveyor-api.server';
export { eventually, sleep } from './eventually';
export { LokiServer, type LokiEntry } from './loki.server';
export { ConveyorControlPlane, type ControlPlaneOptions } from './control-plane/conveyor-control-plane';
export { ControlPlaneStore } from './control-plane/control-plane.store';
export { readEventStream } from './control-plane/event-stream.client';
export { PIPELINE_DEFINITION } from './control-plane/pipeline-definition';
export {
  createTestPki,
  issueCertificate,
  natsTlsConfig,
  type ExtKeyUsage,
  type IssueOptions,
  type TestPki,
} from './test-pki';
export { createNatsOperator, type NatsOperatorSetup } from './nats-operator';
export { ApiAuthVerifier, type ApiAuthError } from './control-plane/api-auth.verifier';
export { createLocalAuth, type LocalAuth } from './control-plane/local-auth';
