import { ConveyorTestingModule, makeResource } from '@conveyor-ci/testing';
import { __RESOURCE_CLASS__Driver } from './app.driver';

// The testing module runs the handler through the runtime's real message path, without a broker.
describe('__RESOURCE_CLASS__Driver', () => {
  let testing: ConveyorTestingModule;

  beforeAll(async () => {
    testing = await ConveyorTestingModule.create({
      options: { driverName: '__DRIVER_NAME__' },
      controllers: [__RESOURCE_CLASS__Driver],
    });
  });
  afterAll(() => testing.close());

  it('reconciles a __RESOURCE__ and acks its event', async () => {
    const run = await testing.reconcile(makeResource({ name: 'first', resource: '__RESOURCE__', spec: {} }));
    expect(run.result?.driverresult).toMatchObject({ success: true, message: 'reconciled first' });
    expect(run.verb).toEqual({ verb: 'ack' });
  });
});
