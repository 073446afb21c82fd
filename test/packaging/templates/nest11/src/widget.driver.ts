import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { DriverResult, Reconcile, ReconcileContext, Resource } from '@conveyor-ci/nestjs';

@Controller()
export class WidgetDriver {
  @Reconcile({ resource: 'widget' })
  reconcile(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext): DriverResult {
    ctx.logger.info(`reconciling ${resource.name}`);
    return { success: true, message: `built ${resource.name}`, data: { runtime: 'nest11' } };
  }
}
