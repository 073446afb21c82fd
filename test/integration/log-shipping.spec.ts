import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { randomBytes, randomUUID } from 'node:crypto';
import { DeadLetterRecord, DriverLogger, Reconcile, ReconcileContext } from '@conveyor-ci/nestjs';
import { LokiServer, eventually, makeResource, publishDriverMessage, sleep } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { storedRunLogs } from '../support/stored-logs';

const suite = useDriverApps();
const { start, expectSettled, closeAfterTest } = suite;

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
      // The runtime ends a run that did not succeed with why, in the run's own log.
      expect.stringMatching(/^retried: attempt 1 of \d+ asks for a retry in 50 ms: once more$/),
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

describe('memory bounded in bytes', () => {
  it('drops what does not fit the budget, says so in the run log, and accounts for every line', async () => {
    @Controller()
    class Flood {
      @Reconcile({ resource: 'flood' })
      run(@Ctx() ctx: ReconcileContext) {
        // Synchronous: nothing can be sent while the loop runs, so the budget alone decides.
        for (let i = 0; i < 5000; i++) ctx.logger.info(`line ${i} ${'x'.repeat(100)}`);
        return { success: true, data: ctx.logger.counts() };
      }
    }
    const name = uniqueDriverName();
    const { app } = await start(name, [Flood], { options: { logs: { maxTotalBytes: 64 * 1024 } } });
    const sent = await publishDriverMessage(suite.env.js, {
      driver: name,
      resource: makeResource({ name: 'f', resource: 'flood', spec: {} }),
    });
    const result = await suite.env.results.waitForRun(sent.message.run_id);
    const counts = result.driverresult.data as { lines: number; dropped: number };
    expect(counts.lines).toBe(5000);
    expect(counts.dropped).toBeGreaterThan(4000);
    const stored = (await storedRunLogs(suite.env.jsm, sent.message.run_id)).map((l) => l.log.message);
    const markers = stored.filter((m) => m.startsWith('[conveyor] '));
    expect(markers).toHaveLength(1);
    expect(markers[0]).toMatch(
      new RegExp(
        `^\\[conveyor\\] ${counts.dropped} log line\\(s\\) \\(\\d+ bytes\\) of this run were not shipped: ` +
          'the log buffer was full \\(raise logs.maxBufferBytes / logs.maxTotalBytes \\(CONVEYOR_LOG_MAX_BYTES\\)\\)$',
      ),
    );
    // The marker comes last: after the lines that were stored, before the result.
    expect(stored[stored.length - 1]).toBe(markers[0]);
    expect(stored.length - 1 + counts.dropped).toBe(5000);
    const stats = app.get(DriverLogger).stats.sinks.conveyor;
    const dropped = Object.values(stats.dropped).reduce((a, b) => a + b, 0);
    expect({ sent: stats.sent, dropped }).toEqual({ sent: stored.length, dropped: counts.dropped });
    expect(app.get(DriverLogger).stats.bufferedBytes).toBe(0);
  });

  it('says what a retried delivery lost before the redelivery runs (no result, still a marker)', async () => {
    let storedBeforeRedelivery: string[] = [];
    @Controller()
    class FloodThenRetry {
      @Reconcile({ resource: 'flood-retry' })
      async run(@Ctx() ctx: ReconcileContext) {
        if (ctx.deliveryCount === 1) {
          for (let i = 0; i < 5000; i++) ctx.logger.info(`line ${i} ${'x'.repeat(100)}`);
          ctx.retry(50, 'again');
          return { success: true };
        }
        // What the first delivery left in the stream, before this one logs anything (another
        // replica could be running this delivery: nothing of this process may be needed).
        storedBeforeRedelivery = (await storedRunLogs(suite.env.jsm, ctx.runId)).map((l) => l.log.message);
        ctx.logger.info('delivery 2');
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    await start(name, [FloodThenRetry], { options: { logs: { maxTotalBytes: 64 * 1024 } } });
    const sent = await publishDriverMessage(suite.env.js, {
      driver: name,
      resource: makeResource({ name: 'f', resource: 'flood-retry', spec: {} }),
    });
    await suite.env.results.waitForRun(sent.message.run_id);
    await expectSettled(name, 2);
    const stored = (await storedRunLogs(suite.env.jsm, sent.message.run_id)).map((l) => l.log.message);
    expect(storedBeforeRedelivery.filter((m) => m.startsWith('[conveyor] '))).toHaveLength(1);
    expect(stored.filter((m) => m.startsWith('[conveyor] '))).toHaveLength(1);
    expect(stored[stored.length - 1]).toBe('delivery 2');
  });
});

describe('a NATS outage during a run', () => {
  it('skips and counts live lines while disconnected, and stores every line after the reconnect', async () => {
    let release!: () => void;
    const outage = new Promise<void>((resolve) => (release = resolve));
    let loggedDuringOutage!: () => void;
    const logged = new Promise<void>((resolve) => (loggedDuringOutage = resolve));
    @Controller()
    class Patient {
      @Reconcile({ resource: 'outage' })
      async run(@Ctx() ctx: ReconcileContext) {
        for (let i = 0; i < 10; i++) ctx.logger.info(`before ${i}`);
        await outage;
        for (let i = 0; i < 50; i++) ctx.logger.info(`during ${i}`);
        loggedDuringOutage();
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    const { app, strategy } = await start(name, [Patient]);
    const disconnected = new Promise<void>((resolve) => strategy.on('disconnect', () => resolve()));
    const sent = await publishDriverMessage(suite.env.js, {
      driver: name,
      resource: makeResource({ name: 'o', resource: 'outage', spec: {} }),
    });
    await eventually(() => strategy.inFlight === 1, 'the run to start', 10_000);
    await sleep(200); // the first lines reach the server
    const live = () => app.get(DriverLogger).stats.sinks['conveyor-live'];
    expect(live()).toMatchObject({ sent: 10 });
    await suite.env.server.halt();
    await disconnected;
    release();
    await logged;
    expect(live().dropped.disconnected).toBe(50);
    await suite.env.server.resume();
    await suite.env.results.waitForRun(sent.message.run_id, 30_000);
    const stored = (await storedRunLogs(suite.env.jsm, sent.message.run_id)).map((l) => l.log.message);
    expect(stored).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `before ${i}`),
      ...Array.from({ length: 50 }, (_, i) => `during ${i}`),
    ]);
    expect(app.get(DriverLogger).stats.sinks.conveyor).toMatchObject({ sent: 60 });
    await expectSettled(name, 1, 20_000);
  });
});

describe('masking everywhere', () => {
  it('hides a masked value in fields, the process log, the stored log, the failure result and dead letters', async () => {
    const secret = 'SuperSecret123';
    const processLog: string[] = [];
    const records: DeadLetterRecord[] = [];
    @Controller()
    class Leaky {
      @Reconcile({ resource: 'leaky' })
      run(@Ctx() ctx: ReconcileContext) {
        ctx.logger.mask(secret);
        ctx.logger.warn(`logging in with ${secret}`, { token: secret, attempt: 1 });
        throw new Error(`login failed for token ${secret}`);
      }
    }
    const name = uniqueDriverName();
    const loki = await LokiServer.start();
    closeAfterTest(() => loki.close());
    await start(name, [Leaky], {
      options: {
        loki: { url: loki.url, batchIntervalMs: 50 },
        onDeadLetter: (r) => void records.push(r),
        logs: { mask: (line) => line.split(secret).join('[hidden]') },
      },
      configure: (app) =>
        app.useLogger({
          log: (m: unknown) => processLog.push(JSON.stringify(m)),
          warn: (m: unknown) => processLog.push(JSON.stringify(m)),
          error: (m: unknown) => processLog.push(JSON.stringify(m)),
          debug: (m: unknown) => processLog.push(JSON.stringify(m)),
          verbose: (m: unknown) => processLog.push(JSON.stringify(m)),
        }),
    });
    const sent = await publishDriverMessage(suite.env.js, {
      driver: name,
      resource: makeResource({ name: 'l', resource: 'leaky', spec: {} }),
    });
    const result = await suite.env.results.waitForRun(sent.message.run_id);
    expect(result.driverresult).toMatchObject({ success: false, message: 'login failed for token ***' });
    // A message that cannot be decoded has no run to mask for: `logs.mask` still applies.
    await suite.env.js.publish(
      `drivers.${name}.resources.leaky`,
      `{"run_id":"${randomUUID()}","payload":"${secret}`,
    );
    await eventually(() => records.length === 1, 'the dead-letter record', 10_000);
    const stored = (await storedRunLogs(suite.env.jsm, sent.message.run_id)).map((l) => l.raw);
    expect(stored).toEqual([
      expect.stringContaining('logging in with ***'),
      expect.stringContaining('failed: handler failed: login failed for token ***'),
    ]);
    expect(processLog.join('\n')).toContain('logging in with ***');
    await eventually(() => loki.entries({ driver: name }).length === 2, 'the lines in Loki', 10_000);
    const inLoki = JSON.stringify(loki.entries({ driver: name }));
    expect(inLoki).toContain('logging in with ***');
    const everything = [
      JSON.stringify(result),
      ...stored,
      ...processLog,
      inLoki,
      JSON.stringify(records[0].reason),
    ].join('\n');
    expect(everything).not.toContain(secret);
    await expectSettled(name, 2);
  });
});
