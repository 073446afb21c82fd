import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { ConveyorTestingModule } from '@conveyor-ci/testing';
import { encodeGoJson, type Resource } from '../protocol';
import { Reconcile } from '../reconcile/reconcile.decorator';
import type { ReconcileContext } from '../reconcile/reconcile-context';
import * as cleanupModule from '../run-control/run-cleanup';
import * as progressModule from '../run-control/run-progress';
import { RunObservers } from './run-events';

@Controller()
class HotPathDriver {
  static ended: string[] = [];

  @Reconcile({ resource: 'plain' })
  plain(@Payload() resource: Resource) {
    resource.name = 'changed by the handler';
    return { success: true };
  }

  @Reconcile({ resource: 'controlled' })
  controlled(@Ctx() ctx: ReconcileContext) {
    ctx.onCleanup((ending) => void HotPathDriver.ended.push(ending.outcome));
    ctx.progress(0.5, 'build');
    return { success: true };
  }
}

const resource = (type: string): Resource => ({
  id: 'id-1',
  name: 'w1',
  pipeline: 'p1',
  resource: type,
  metadata: { note: '<&>' },
  spec: { steps: [1, 2] },
});

describe('the message hot path', () => {
  let testing: ConveyorTestingModule;
  let cleanupsMade: jest.SpyInstance;
  let reportersMade: jest.SpyInstance;

  beforeAll(async () => {
    testing = await ConveyorTestingModule.create({
      controllers: [HotPathDriver],
      options: { driverName: 'hot-path' },
      logger: false,
    });
    const { RunCleanups } = cleanupModule;
    const { RunProgressReporter } = progressModule;
    cleanupsMade = jest
      .spyOn(cleanupModule, 'RunCleanups')
      .mockImplementation((...args) => new RunCleanups(...args));
    reportersMade = jest
      .spyOn(progressModule, 'RunProgressReporter')
      .mockImplementation((...args) => new RunProgressReporter(...args));
  });
  beforeEach(() => jest.clearAllMocks());
  afterAll(async () => {
    jest.restoreAllMocks();
    await testing.close();
  });

  it('makes no cleanup hooks or progress reporter for a run that uses neither', async () => {
    const run = await testing.reconcile(resource('plain'));
    expect(run.settlement.kind).toBe('succeeded');
    expect(cleanupsMade).not.toHaveBeenCalled();
    expect(reportersMade).not.toHaveBeenCalled();
  });

  it('makes them on first use, and still runs the cleanups and sends the progress', async () => {
    const run = await testing.reconcile(resource('controlled'));
    expect(run.settlement.kind).toBe('succeeded');
    expect(cleanupsMade).toHaveBeenCalledTimes(1);
    expect(reportersMade).toHaveBeenCalledTimes(1);
    expect(HotPathDriver.ended).toEqual(['succeeded']);
    expect(run.progress).toMatchObject([{ fraction: 0.5, phase: 'build' }]);
  });

  it('parses the payload once; the handler has the object, the result the resource as received', async () => {
    const sent = resource('plain');
    const payload = encodeGoJson(sent);
    const parse = jest.spyOn(JSON, 'parse');
    let parsedPayload: number;
    let run;
    try {
      run = await testing.reconcile(sent);
      parsedPayload = parse.mock.calls.filter(([text]) => text === payload).length;
    } finally {
      parse.mockRestore();
    }
    expect(parsedPayload).toBe(1);
    expect(run.ctx?.resource.name).toBe('changed by the handler');
    expect(run.ctx?.payload).toBe(payload);
    expect(run.result?.resource).toEqual(sent);
  });
});

describe('RunObservers', () => {
  it('is listening once an observer is added, and then tells it', () => {
    const observers = new RunObservers();
    expect(observers.listening).toBe(false);
    const runStarted = jest.fn();
    observers.add({ runStarted });
    expect(observers.listening).toBe(true);
    observers.runStarted({ resourceType: 'r', deliveryCount: 1 });
    expect(runStarted).toHaveBeenCalledWith({ resourceType: 'r', deliveryCount: 1 });
  });
});
