import 'reflect-metadata';
import { ConveyorTestingModule, makeResource } from '@conveyor-ci/testing';
import { WidgetDriver } from './widget.driver';

/** The testing package, installed from its tarball, drives the driver through the real message path. */
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
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
