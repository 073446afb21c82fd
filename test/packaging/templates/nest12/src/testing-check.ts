import 'reflect-metadata';
import { Controller, Injectable } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { Reconcile, Resource } from '@conveyor-ci/nestjs';
import { ConveyorTestingModule, makeResource } from '@conveyor-ci/testing';
import { WidgetDriver } from './widget.driver.js';

@Injectable()
class Painter {
  paint(name: string): string {
    return `painted ${name}`;
  }
}

@Controller()
class GadgetDriver {
  constructor(private readonly painter: Painter) {}

  @Reconcile({ resource: 'gadget' })
  reconcile(@Payload() resource: Resource) {
    return { success: true, message: this.painter.paint(resource.name) };
  }
}

/**
 * The testing package, installed from its tarball, drives the driver through the real message path,
 * with create() and with a provider overridden on the builder (on the app's own @nestjs/testing).
 */
async function main(): Promise<void> {
  const testing = await ConveyorTestingModule.create({ controllers: [WidgetDriver] });
  try {
    const run = await testing.reconcile(makeResource({ name: 'w', resource: 'widget', spec: {} }));
    const result = run.result?.driverresult;
    if (result?.success !== true || run.verb.verb !== 'ack') {
      throw new Error(`unexpected run: ${JSON.stringify({ result, verb: run.verb })}`);
    }
    console.log(`testing module: ${result.message}, ${run.verb.verb}`);
  } finally {
    await testing.close();
  }
  const overridden = await ConveyorTestingModule.builder({ controllers: [GadgetDriver], providers: [Painter] })
    .overrideProvider(Painter)
    .useValue({ paint: (name: string) => `faked ${name}` })
    .compile();
  try {
    const run = await overridden.reconcile(makeResource({ name: 'g', resource: 'gadget', spec: {} }));
    if (run.result?.driverresult.message !== 'faked g') {
      throw new Error(`override not used: ${JSON.stringify(run.result?.driverresult)}`);
    }
    console.log(`testing module with overrideProvider: ${run.result.driverresult.message}`);
  } finally {
    await overridden.close();
  }
}
await main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
