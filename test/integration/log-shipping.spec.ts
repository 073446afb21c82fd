import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { randomBytes, randomUUID } from 'node:crypto';
import { Reconcile, ReconcileContext } from '@conveyor-ci/nestjs';
import { makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { storedRunLogs } from '../support/stored-logs';

const suite = useDriverApps();
const { start, expectSettled } = suite;

describe('no line lost on redelivery', () => {
  it("stores every delivery's lines of a retried run, each delivery in order", async () => {
    @Controller()
    class Flaky {
      @Reconcile({ resource: 'flaky-log' })
      run(@Ctx() ctx: ReconcileContext) {
        for (let i = 1; i <= 5; i++) ctx.logger.info(`delivery ${ctx.deliveryCount} line ${i}`);
        if (ctx.deliveryCount === 1) ctx.retry(50, 'once more');
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    await start(name, [Flaky]);
    const sent = await publishDriverMessage(suite.env.js, {
      driver: name,
      resource: makeResource({ name: 'r', resource: 'flaky-log', spec: {} }),
    });
    await suite.env.results.waitForRun(sent.message.run_id);
    const lines = (await storedRunLogs(suite.env.jsm, sent.message.run_id)).map((l) => l.log.message);
    expect(lines).toEqual([
      ...[1, 2, 3, 4, 5].map((i) => `delivery 1 line ${i}`),
      ...[1, 2, 3, 4, 5].map((i) => `delivery 2 line ${i}`),
    ]);
    await expectSettled(name, 2);
  });

  it('stores both runs of a driver used twice in one pipeline (one run id, two messages)', async () => {
    @Controller()
    class Twice {
      @Reconcile({ resource: 'twice' })
      run(@Ctx() ctx: ReconcileContext) {
        for (let i = 1; i <= 3; i++) ctx.logger.info(`${ctx.event} line ${i}`);
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    await start(name, [Twice]);
    const runId = randomUUID();
    const resource = makeResource({ name: 'p', resource: 'twice', spec: {}, pipeline: 'pipe' });
    // The engine sends one message per step, each with a new id and the run's id.
    await publishDriverMessage(suite.env.js, {
      driver: name,
      resource,
      runId,
      event: 'create',
      id: randomBytes(12).toString('hex'),
    });
    await suite.env.results.waitForRun(runId);
    await publishDriverMessage(suite.env.js, {
      driver: name,
      resource,
      runId,
      event: 'process',
      id: randomBytes(12).toString('hex'),
    });
    await expectSettled(name, 2);
    const lines = (await storedRunLogs(suite.env.jsm, runId)).map((l) => l.log.message);
    expect(lines).toEqual([
      'create line 1',
      'create line 2',
      'create line 3',
      'process line 1',
      'process line 2',
      'process line 3',
    ]);
  });
});
