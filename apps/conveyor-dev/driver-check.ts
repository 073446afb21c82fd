import { DriverRegistry, type Resource } from '@conveyor-ci/nestjs';
import type { ConveyorControlPlane } from '@conveyor-ci/testing';

/**
 * What a submitted run waits for that nobody serves: the drivers of its pipeline's steps without
 * a live replica in the driver registry (or, for a resource without a pipeline, no live driver of
 * its type at all). Such a run stalls in silence otherwise: the server never says so (issue 29).
 * @returns one line per missing driver; none when every step has a live replica.
 */
export async function missingDrivers(
  plane: ConveyorControlPlane,
  resource: Resource<unknown>,
): Promise<string[]> {
  let live: { driver: string; resources: { resource: string }[] }[];
  try {
    live = await new DriverRegistry(plane.nc).list();
  } catch (err) {
    return [`cannot read the driver registry: ${(err as Error).message}`];
  }
  if (!resource.pipeline) {
    const serves = live.some((d) => d.resources.some((r) => r.resource === resource.resource));
    return serves ? [] : [`no live driver reconciles "${resource.resource}": the event waits for one`];
  }
  const steps = plane.store.pipelines.get(resource.pipeline)?.steps ?? [];
  return [...new Set(steps.map((step) => step.driver))]
    .filter((driver) => !live.some((d) => d.driver === driver))
    .map(
      (driver) =>
        `pipeline "${resource.pipeline}" names driver "${driver}", which has no live replica: its step will wait`,
    );
}

/** A replica is listed within a second of consuming: one that just started gets this long to appear. */
const GRACE_MS = 1_500;

/**
 * Prints {@link missingDrivers} as warnings, after a second look for a driver that may have just
 * started. Never throws: a check must not break the submit.
 */
export function warnAboutMissingDrivers(plane: ConveyorControlPlane, resource: Resource<unknown>): void {
  void (async () => {
    if ((await missingDrivers(plane, resource)).length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, GRACE_MS).unref());
    for (const line of await missingDrivers(plane, resource)) console.warn(`[warn] ${line}`);
  })();
}
