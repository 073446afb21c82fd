import { BadRequestException, Controller, PipeTransform, UsePipes } from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants';
import { Payload } from '@nestjs/microservices';
import { ConveyorTestingModule } from '../../../testing/src/conveyor-testing.module';
import type { Resource } from '../protocol';
import { Reconcile } from './reconcile.decorator';
import { ReconcileOutcomeInterceptor } from './reconcile-outcome.interceptor';
import { RetryableError } from '../settlement/retryable.error';

class Reject implements PipeTransform {
  transform(): never {
    throw new BadRequestException('rejected by the pipe');
  }
}

@Controller()
class Driver {
  // No @Ctx(): the wrapper finds the run through its scope.
  @Reconcile({ resource: 'plain' })
  plain(@Payload() resource: Resource) {
    throw new RetryableError(`busy with ${resource.name}`, { delayMs: 10 });
  }

  @Reconcile({ resource: 'asyncfail' })
  async asyncFail() {
    await new Promise((r) => setImmediate(r));
    throw new TypeError('late failure');
  }

  @UsePipes(Reject)
  @Reconcile({ resource: 'piped' })
  piped() {
    return { success: true };
  }
}

const resource = (type: string): Resource => ({ id: '1', name: 'r', resource: type, metadata: {}, spec: {} });
const interceptorsOf = (method: keyof Driver) =>
  (Reflect.getMetadata(INTERCEPTORS_METADATA, Driver.prototype[method]) ?? []) as unknown[];

describe('recording what a handler throws', () => {
  let testing: ConveyorTestingModule;
  beforeAll(async () => {
    testing = await ConveyorTestingModule.create({ controllers: [Driver], options: { maxAttempts: 3 } });
  });
  afterAll(() => testing.close());

  it('sees the original error of a handler without @Ctx(), through the run scope', async () => {
    const run = await testing.reconcile(resource('plain'));
    expect(run.settlement).toMatchObject({ kind: 'retried', action: 'nak', delayMs: 10 });
    expect(run.verb).toEqual({ verb: 'nak', delayMs: 10 });
  });

  it('sees the original error of a rejected promise', async () => {
    const run = await testing.reconcile(resource('asyncfail'));
    expect(run.result?.driverresult).toMatchObject({ success: false, message: 'late failure' });
  });

  it("sees a pipe's error: the outcome interceptor is added only where a pipe can run", async () => {
    const run = await testing.reconcile(resource('piped'));
    expect(run.result?.driverresult).toMatchObject({ success: false, message: 'rejected by the pipe' });
    expect(interceptorsOf('piped').some((i) => i instanceof ReconcileOutcomeInterceptor)).toBe(true);
    expect(interceptorsOf('plain')).toEqual([]);
    expect(interceptorsOf('asyncFail')).toEqual([]);
  });
});
