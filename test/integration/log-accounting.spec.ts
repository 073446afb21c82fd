import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { DriverLogger, Reconcile, ReconcileContext } from '@conveyor-ci/nestjs';
import { LOGS_ENGINE_STREAM } from '@conveyor-ci/nestjs/internal';
import { LogShipper } from '@conveyor-ci/nestjs/internal';
import { NatsFaultProxy, eventually, makeResource, publishDriverMessage, sleep } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { storedRunLogs } from '../support/stored-logs';

const MAX_PAYLOAD = 64 * 1024;
const suite = useDriverApps({ maxPayload: MAX_PAYLOAD });
const { start, closeAfterTest } = suite;

/** What `ctx.logger.counts()` returns. */
type RunLogCounts = { lines: number; dropped: number };

/** Lines the sink stored or dropped, its own drop notices left out: what the logger was given. */
function accounted(app: { get: (t: typeof DriverLogger) => DriverLogger }, markers: number) {
  const stats = app.get(DriverLogger).stats;
  const sink = stats.sinks.conveyor;
  const dropped = Object.values(sink.dropped).reduce((a, b) => a + b, 0);
  return { logged: stats.lines, accounted: sink.sent - markers + dropped };
}

async function publishFor(driver: string, resource: string): Promise<string> {
  const sent = await publishDriverMessage(suite.env.js, {
    driver,
    resource: makeResource({ name: 'r', resource, spec: {} }),
  });
  return sent.message.run_id;
}

describe('every logged line is stored or counted', () => {
  it('a redial carries the lines unanswered on the closed connection over to the new one', async () => {
    const proxy = await NatsFaultProxy.start(suite.env.server.port);
    closeAfterTest(() => proxy.close(), 'the NATS fault proxy');
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    @Controller()
    class Redialed {
      @Reconcile({ resource: 'redial-log' })
      async run(@Ctx() ctx: ReconcileContext) {
        for (let i = 1; i <= 10; i++) ctx.logger.info(`line ${i}`);
        await released;
        return { success: true, data: ctx.logger.counts() };
      }
    }
    const name = uniqueDriverName();
    // The first send of the ten lines never reaches the server: no PubAck comes on that connection.
    const lost = proxy.dropPublishes((m) => m.subject.startsWith('logs.'), 10);
    const { app, strategy } = await start(name, [Redialed], { options: { servers: proxy.url } });
    const runId = await publishFor(name, 'redial-log');
    while (lost.dropped.length < 10) await sleep(5);
    // nats.js gives up on the connection for good (before the batch's resend): the transport dials anew.
    const old = strategy.unwrap();
    await old.close();
    while (strategy.unwrap() === old || !strategy.isReady) await sleep(20);
    release();
    const result = await suite.env.results.waitForRun(runId, 15_000);
    expect(result.driverresult.data).toEqual({ lines: 10, dropped: 0 });
    const stored = (await storedRunLogs(suite.env.jsm, runId)).map((l) => l.log.message);
    expect(stored).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 1}`));
    expect(accounted(app, 0)).toEqual({ logged: 10, accounted: 10 });
  }, 30_000);

  it("a line too large for the server's max_payload is dropped alone, said in the run's log, the rest of its batch stored", async () => {
    @Controller()
    class Oversized {
      @Reconcile({ resource: 'oversize-log' })
      run(@Ctx() ctx: ReconcileContext) {
        // One synchronous stretch: all eleven lines go into one batch.
        for (let i = 1; i <= 5; i++) ctx.logger.info(`before ${i}`);
        // 30,000 ESCs pass logs.maxLineBytes (32 KiB) but are 180,000 bytes in the Log JSON.
        ctx.logger.info('\u001b'.repeat(30_000));
        for (let i = 1; i <= 5; i++) ctx.logger.info(`after ${i}`);
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    const { app } = await start(name, [Oversized], { options: { logs: { flushTimeoutMs: 20_000 } } });
    const runId = await publishFor(name, 'oversize-log');
    await suite.env.results.waitForRun(runId, 15_000);
    const stored = (await storedRunLogs(suite.env.jsm, runId)).map((l) => l.log.message);
    const marker =
      `[conveyor] 1 log line(s) (30000 bytes) of this run were not shipped: ` +
      `larger than the server's max_payload (${MAX_PAYLOAD} bytes)`;
    expect(stored).toEqual([
      ...[1, 2, 3, 4, 5].map((i) => `before ${i}`),
      marker,
      ...[1, 2, 3, 4, 5].map((i) => `after ${i}`),
    ]);
    expect(app.get(DriverLogger).stats.sinks.conveyor.dropped.rejected).toBe(1);
    expect(accounted(app, 1)).toEqual({ logged: 11, accounted: 11 });
  }, 30_000);

  it("splits a line above the server's max_payload instead of dropping it (logs.maxLineBytes is lowered to fit)", async () => {
    const line = 'y'.repeat(100 * 1024);
    @Controller()
    class Long {
      @Reconcile({ resource: 'long-log' })
      run(@Ctx() ctx: ReconcileContext) {
        ctx.logger.info(line);
        return { success: true, data: ctx.logger.counts() };
      }
    }
    const name = uniqueDriverName();
    const { app } = await start(name, [Long], { options: { logs: { maxLineBytes: 256 * 1024 } } });
    const runId = await publishFor(name, 'long-log');
    const result = await suite.env.results.waitForRun(runId, 15_000);
    const stored = (await storedRunLogs(suite.env.jsm, runId)).map((l) => l.log.message);
    expect(stored.length).toBe(2);
    expect(stored.join('')).toBe(line);
    expect((result.driverresult.data as RunLogCounts).dropped).toBe(0);
    expect(accounted(app, 0)).toEqual({ logged: 2, accounted: 2 });
  }, 30_000);

  it('a batch the stream refuses for good is dropped at once, not retried, and the run says so before its result', async () => {
    // Another tool limits the stream's message size below max_payload: the server refuses the line.
    const info = await suite.env.jsm.streams.info(LOGS_ENGINE_STREAM);
    await suite.env.jsm.streams.update(LOGS_ENGINE_STREAM, { ...info.config, max_msg_size: 4096 });
    closeAfterTest(() =>
      suite.env.jsm.streams.update(LOGS_ENGINE_STREAM, { ...info.config, max_msg_size: -1 }),
    );
    @Controller()
    class Refused {
      @Reconcile({ resource: 'refused-log' })
      async run(@Ctx() ctx: ReconcileContext) {
        ctx.logger.info('before');
        await sleep(50);
        ctx.logger.info('z'.repeat(8000));
        await sleep(50);
        return { success: true, data: ctx.logger.counts() };
      }
    }
    const name = uniqueDriverName();
    // Retried as transient, the batch would hold the result for the whole flush timeout.
    const { app } = await start(name, [Refused], { options: { logs: { flushTimeoutMs: 60_000 } } });
    const runId = await publishFor(name, 'refused-log');
    const result = await suite.env.results.waitForRun(runId, 10_000);
    const stored = (await storedRunLogs(suite.env.jsm, runId)).map((l) => l.log.message);
    expect(stored).toEqual([
      'before',
      expect.stringMatching(
        /^\[conveyor\] 1 log line\(s\) \(8000 bytes\) of this run were not shipped: refused by the server: .*size/,
      ),
    ]);
    const counts = result.driverresult.data as RunLogCounts;
    expect(counts.lines).toBe(2);
    expect(app.get(DriverLogger).stats.sinks.conveyor.dropped).toMatchObject({
      rejected: 1,
      retries_exhausted: 0,
    });
    expect(accounted(app, 1)).toEqual({ logged: 2, accounted: 2 });
  }, 30_000);

  it("announces what a finished run's late lines lost once there is room, then forgets the run", async () => {
    let runDone!: () => void;
    const late = new Promise<void>((resolve) => (runDone = resolve));
    @Controller()
    class Late {
      @Reconcile({ resource: 'late-log' })
      run(@Ctx() ctx: ReconcileContext) {
        // Work the handler left behind logs after the result: more than the budget holds at once.
        setTimeout(() => {
          for (let i = 0; i < 2000; i++) ctx.logger.info(`late ${i} ${'x'.repeat(100)}`);
          runDone();
        }, 200);
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    const { app } = await start(name, [Late], { options: { logs: { maxTotalBytes: 64 * 1024 } } });
    const runId = await publishFor(name, 'late-log');
    await suite.env.results.waitForRun(runId, 15_000);
    await late;
    const shipper = app.get(LogShipper);
    // Nothing of the run is left: not its lines, not a drop notice still to say, not its binding.
    await eventually(() => !shipper.hasUnflushed(runId), 'the run forgotten by the sink', 10_000);
    const stored = (await storedRunLogs(suite.env.jsm, runId)).map((l) => l.log.message);
    const markers = stored.filter((m) => m.startsWith('[conveyor] '));
    const sink = app.get(DriverLogger).stats.sinks.conveyor;
    expect(markers.length).toBeGreaterThanOrEqual(1);
    const announced = markers.reduce((n, m) => n + Number(/^\[conveyor\] (\d+) log line/.exec(m)![1]), 0);
    expect(announced).toBe(sink.dropped.budget);
    expect(stored.length - markers.length + sink.dropped.budget).toBe(2000);
  }, 30_000);
});
