import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import { ConveyorModule, Reconcile, ReconcileContext, Resource, connectConveyor } from '@conveyor-ci/nestjs';

@Controller()
class GreetingDriver {
  @Reconcile({ resource: 'greeting' }) // `greeting` events, and pipeline steps that name this driver
  greet(@Payload() resource: Resource<{ to: string }>, @Ctx() ctx: ReconcileContext) {
    ctx.logger.info(`hello, ${resource.spec.to}`); // stored as the run's log
    return { success: true, message: `greeted ${resource.spec.to}` }; // the step's result; a throw fails it
  }
}

@Module({ imports: [ConveyorModule.forRoot({ driverName: 'greeter' })], controllers: [GreetingDriver] })
class AppModule {}

void NestFactory.create(AppModule).then(async (app) => {
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true }); // finish runs, then exit 0
  await connectConveyor(app); // attaches the transport and starts consuming
  await app.listen(process.env.PORT ?? 3000);
});
