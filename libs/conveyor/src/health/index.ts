/**
 * `@conveyor-ci/nestjs/health`: Kubernetes probes on @nestjs/terminus. A subpath of its own, so an
 * app that does not serve `/health` needs no terminus installed.
 */
export {
  ConveyorHealthModule,
  type ConveyorHealthModuleOptions,
  type ConveyorHealthModuleAsyncOptions,
} from './conveyor-health.module';
export { ConveyorHealthIndicator } from './conveyor.health';
export type { ConveyorHealthOptions, ConveyorHealthModuleExtras } from './conveyor-health.options';
export { CONVEYOR_HEALTH_OPTIONS } from './conveyor-health.constants';
