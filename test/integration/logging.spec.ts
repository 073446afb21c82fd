import { Controller, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Ctx, Payload } from '@nestjs/microservices';
import { ConveyorLog, DriverLogger, Reconcile, ReconcileContext, Resource } from '@conveyor-ci/nestjs';
import { queryLokiLogs, subscribeRunLogs } from '@conveyor-ci/nestjs/internal';
import { LokiServer, eventually, makeResource, publishDriverMessage, sleep } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { storedRunLogs } from '../support/stored-logs';

const suite = useDriverApps();
const { start, expectSettled, closeAfterTest } = suite;

const storedLogs = (runId: string) => storedRunLogs(suite.env.jsm, runId);

/** Collects what arrives on a core subject, from the moment the server knows the subscription. */
async function listen(subject: string): Promise<string[]> {
  const got: string[] = [];
  const sub = suite.env.nc.subscribe(subject, {
    callback: (_e, m) => got.push(new TextDecoder().decode(m.data)),
  });
  closeAfterTest(async () => sub.unsubscribe());
  await suite.env.nc.flush();
  return got;
}

@Injectable()
class BuildService {
  constructor(private readonly logger: DriverLogger) {}
  /** Logs from a provider: the injected DriverLogger finds the run through AsyncLocalStorage. */
  compile(lines: number) {
    for (let i = 0; i < lines; i++) this.logger.info(`line ${i}`);
  }
}

@Controller()
class LoggingDriver {
  constructor(private readonly build: BuildService) {}

  @Reconcile({ resource: 'logged' })
  run(
    @Payload() resource: Resource<{ lines: number; secret?: string; late?: boolean; long?: number }>,
    @Ctx() ctx: ReconcileContext,
  ) {
    if (resource.spec.secret) ctx.logger.mask(resource.spec.secret);
    ctx.logger.info(`hello <&> ${resource.spec.secret ?? ''}`.trim());
    this.build.compile(resource.spec.lines);
    if (resource.spec.long) ctx.logger.info('x'.repeat(resource.spec.long));
    if (resource.spec.late) setTimeout(() => ctx.logger.warn('after the result'), 100);
    return { success: true, message: 'logged' };
  }
}

async function startLogging(extra: Record<string, unknown> = {}) {
  const name = uniqueDriverName();
  const started = await start(name, [LoggingDriver], {
    providers: [BuildService],
    options: { driverName: name, servers: suite.env.url, ...extra },
  });
  return { name, ...started };
}

function send(name: string, spec: Record<string, unknown>, runId?: string) {
  return publishDriverMessage(suite.env.js, {
    runId,
    driver: name,
    resource: makeResource({ name: 'job', resource: 'logged', pipeline: 'build-pipe', spec }),
  });
}

describe('DriverLogger sinks (real nats-server, server-faithful Loki)', () => {
  it('publishes the exact Log JSON to logs.{run} and live.logs.{run}.{driver}, before the result', async () => {
    const { name } = await startLogging();
    const runId = randomUUID();
    const live: ConveyorLog[] = [];
    const sub = subscribeRunLogs(suite.env.nc, runId, (log) => live.push(log));
    closeAfterTest(async () => sub.unsubscribe());
    await suite.env.nc.flush();
    const raw = await listen(`live.logs.${runId}.${name}`);
    await send(name, { lines: 2 }, runId);
    await suite.env.results.waitForRun(runId);
    // Flushed before the result: everything is stored the moment the result is out.
    const stored = await storedLogs(runId);
    expect(stored.map((s) => s.log.message)).toEqual(['hello <&>', 'line 0', 'line 1']);
    const [first] = stored;
    expect(first.raw).toMatch(
      new RegExp(
        `^\\{"runid":"${runId}","driver":"${name}","pipeline":"build-pipe","timestamp":"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{9}Z","message":"hello \\\\u003c\\\\u0026\\\\u003e"\\}$`,
      ),
    );
    await eventually(() => live.length === 3 && raw.length === 3, 'the live lines');
    expect(raw).toEqual(stored.map((s) => s.raw)); // the same bytes on both subjects
    expect(live).toEqual(stored.map((s) => s.log));
    await expectSettled(name, 1);
  });

  it('ships 10,000 lines of one run in order, exactly once, to the Conveyor subjects and to Loki', async () => {
    const loki = await LokiServer.start();
    closeAfterTest(() => loki.close());
    const { name, app } = await startLogging({ loki: { url: loki.url, batchIntervalMs: 200 } });
    const live = await listen(`live.logs.*.${name}`);
    const sent = await send(name, { lines: 10_000 });
    const runId = sent.message.run_id;
    await suite.env.results.waitForRun(runId, 60_000);
    const expected = ['hello <&>', ...Array.from({ length: 10_000 }, (_, i) => `line ${i}`)];
    const stored = await storedLogs(runId);
    expect(stored.map((s) => s.log.message)).toEqual(expected);
    const stamps = stored.map((s) => s.log.timestamp);
    expect([...stamps].sort()).toEqual(stamps); // the server's key order is the log order
    expect(new Set(stamps).size).toBe(stamps.length);
    await eventually(() => live.length === expected.length, 'every live line', 30_000);
    expect(live.map((l) => JSON.parse(l).message)).toEqual(expected);
    await eventually(
      () => loki.entries({ driver: name }).length >= expected.length,
      'every Loki line',
      30_000,
    );
    const entries = loki.entries({ driver: name });
    expect(entries.map((e) => e.line)).toEqual(expected);
    expect(entries[0]).toMatchObject({
      labels: { driver: name, event: 'create', level: 'info' },
      metadata: { run_id: runId, message_id: sent.message.id },
    });
    // Read back with query_range, paging past the per-query limit.
    const readBack = await queryLokiLogs(loki.url, { driver: name, runId, limit: 1000 });
    expect(readBack.map((l) => l.line)).toEqual(expected);
    const logger = app.get(DriverLogger);
    await eventually(() => logger.stats.sinks.loki.sent === expected.length, 'the sink counting every batch');
    expect(logger.stats.sinks.conveyor).toMatchObject({ sent: expected.length });
  });

  it('publishes the result and acks while Loki hangs forever, with every line on the Conveyor subjects', async () => {
    const loki = await LokiServer.start();
    closeAfterTest(() => loki.close());
    loki.hang(true);
    const { name } = await startLogging({
      loki: { url: loki.url, batchIntervalMs: 50 },
      logs: { flushTimeoutMs: 300 },
    });
    const sent = await send(name, { lines: 50 });
    const result = await suite.env.results.waitForRun(sent.message.run_id);
    expect(result.driverresult.success).toBe(true);
    await expectSettled(name, 1);
    expect((await storedLogs(sent.message.run_id)).length).toBe(51);
    expect(loki.entries({ driver: name })).toEqual([]);
  });

  it('delivers every line exactly once after Loki answers 429, then 200', async () => {
    const loki = await LokiServer.start();
    closeAfterTest(() => loki.close());
    loki.respondWith(429, 2);
    const { name, app } = await startLogging({ loki: { url: loki.url, batchIntervalMs: 50 } });
    const sent = await send(name, { lines: 300 });
    await suite.env.results.waitForRun(sent.message.run_id);
    await eventually(() => app.get(DriverLogger).stats.sinks.loki.sent === 301, 'the retried lines', 20_000);
    await sleep(300); // nothing more arrives
    const lines = loki.entries({ driver: name }).map((e) => e.line);
    expect(lines).toHaveLength(301);
    expect(new Set(lines).size).toBe(301);
    expect(app.get(DriverLogger).stats.sinks.loki).toEqual({
      sent: 301,
      dropped: { overflow: 0, budget: 0, disconnected: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 },
    });
  });

  it('counts every line a full buffer drops, and what shutdown could not send: sent + dropped = emitted', async () => {
    const loki = await LokiServer.start();
    closeAfterTest(() => loki.close());
    loki.hang(true);
    const { name, app } = await startLogging({
      loki: { url: loki.url, batchIntervalMs: 600_000, batchBytes: 100 * 1024 * 1024, timeoutMs: 200 },
      logs: { maxBufferLines: 50, flushTimeoutMs: 300 },
    });
    const sent = await send(name, { lines: 199 });
    await suite.env.results.waitForRun(sent.message.run_id);
    const logger = app.get(DriverLogger);
    expect(logger.stats.sinks.loki.dropped.overflow).toBe(150);
    await app.close();
    expect(logger.stats.sinks.loki).toEqual({
      sent: 0,
      dropped: { overflow: 150, budget: 0, disconnected: 0, rejected: 0, retries_exhausted: 0, shutdown: 50 },
    });
    expect(logger.stats.sinks.conveyor.sent).toBe(200);
  });

  it("masks secrets, publishes the seed's live subject when enabled, and counts late lines", async () => {
    const { name, app } = await startLogging({ logs: { legacySubject: true } });
    const runId = randomUUID();
    // One token (":" is no separator), so it cannot be subscribed by wildcard: the run id is known first.
    const legacy = await listen(`driver:${name}:logs:${runId}`);
    const live = await listen(`live.logs.*.${name}`);
    const sent = await send(name, { lines: 1, secret: 's3cr3t-token', late: true }, runId);
    await suite.env.results.waitForRun(sent.message.run_id);
    await eventually(() => legacy.length === 3 && live.length === 3, 'all lines, the late one included');
    const [unix, message] = JSON.parse(legacy[0]);
    expect(unix).toMatch(/^\d{10}$/);
    expect(message).toBe('hello <&> ***');
    expect(legacy.map((l) => JSON.parse(l)[1])).toEqual(['hello <&> ***', 'line 0', 'after the result']);
    expect(live.join('\n')).not.toContain('s3cr3t');
    expect(app.get(DriverLogger).stats.late).toBe(1);
  });

  it("uses the seed's Loki labels, drops a batch Loki refuses (400) without retrying, splits and masks lines", async () => {
    const loki = await LokiServer.start();
    closeAfterTest(() => loki.close());
    loki.respondWith(400, 1);
    const { name, app } = await startLogging({
      loki: { url: loki.url, legacyLabels: true, batchIntervalMs: 100 },
      logs: { maxLineBytes: 64, mask: (line: string) => line.replace('<&>', '[html]') },
    });
    const logger = app.get(DriverLogger);
    const first = await send(name, { lines: 0, long: 150 });
    await suite.env.results.waitForRun(first.message.run_id);
    await eventually(() => logger.stats.sinks.loki.dropped.rejected === 4, 'the refused batch');
    const second = await send(name, { lines: 0, long: 150 });
    await suite.env.results.waitForRun(second.message.run_id);
    await eventually(() => loki.entries({ driver: name }).length === 4, 'the second run in Loki');
    const entries = loki.entries({ driver: name });
    expect(entries.map((e) => e.line)).toEqual([
      'hello [html]',
      'x'.repeat(64),
      'x'.repeat(64),
      'x'.repeat(22),
    ]);
    expect(entries[0].labels).toEqual({
      driver: name,
      event: 'create',
      id: second.message.id,
      run_id: second.message.run_id,
    });
    expect(entries[0].metadata).toBeUndefined();
    // Loki stores a batch before the sink hears its answer.
    await eventually(() => logger.stats.sinks.loki.sent === 4, 'the sink counting the batch');
    expect(logger.stats).toMatchObject({ lines: 8, split: 2, sinks: { loki: { sent: 4 } } });
    expect(loki.requests).toBe(2); // the refused batch was not sent again
  });
});
