import { randomUUID } from 'node:crypto';
import { ConveyorTestEnv, makeResource, publishDriverMessage } from '@conveyor-ci/testing';

/** Publishes a pipeline step for `driver` with a fresh resource of type `resource`, as the engine does. */
export function publishStep(env: ConveyorTestEnv, driver: string, resource: string, spec: unknown = {}) {
  return publishDriverMessage(env.js, {
    driver,
    resource: makeResource({ name: `${resource}-${randomUUID().slice(0, 8)}`, resource, spec }),
  });
}
