/**
 * `@conveyor-ci/nestjs/health`: Kubernetes probes on @nestjs/terminus. A subpath of its own, so an
 * app that does not serve `/health` needs no terminus installed.
 */
export { ConveyorHealthModule } from './conveyor-health.module';
