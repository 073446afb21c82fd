import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { DriverResult, Reconcile, ReconcileContext, Resource } from '@conveyor-ci/nestjs';

/** What a `__RESOURCE__` resource's spec holds: change it to your resource's fields. */
export interface __RESOURCE_CLASS__Spec {
  message?: string;
}

/** Reconciles `__RESOURCE__` resources: called once per event the Conveyor server sends for one. */
@Controller()
export class __RESOURCE_CLASS__Driver {
  @Reconcile({ resource: '__RESOURCE__' })
  reconcile(@Payload() resource: Resource<__RESOURCE_CLASS__Spec>, @Ctx() ctx: ReconcileContext): DriverResult {
    // Lines logged here are the run's log, shipped to Conveyor (and Loki when configured).
    ctx.logger.info(`reconciling ${resource.name}`);
    return { success: true, message: resource.spec.message ?? `reconciled ${resource.name}` };
  }
}
