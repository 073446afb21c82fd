import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Logger } from '@nestjs/common';
import { LokiServer } from '@conveyor-ci/testing';
import { LogBudget } from '../../libs/conveyor/src/logger/log-budget';
import type { LogEntry } from '../../libs/conveyor/src/logger/log-entry';
import { nextLogLine, testRunBinding } from '../../libs/conveyor/src/logger/log-lines.spec-support';
import { LokiLogSink } from '../../libs/conveyor/src/logger/sinks/loki.sink';

/**
 * The Loki sink yields to the Conveyor sink: a push waits while that one is storing lines (a
 * run's result waits for those only), never longer than `deferMaxMs` after its oldest line, and
 * never while its buffer holds half its byte budget.
 */
describe('LokiLogSink behind the Conveyor sink (server-faithful local Loki)', () => {
  let loki: LokiServer;
  beforeAll(async () => (loki = await LokiServer.start()));
  afterAll(() => loki.close());

  const binding = testRunBinding({
    runId: 'loki-run',
    driver: 'loki-driver',
    messageId: 'm-1',
    resource: 'job',
  });
  const line = (message: string): LogEntry => nextLogLine(binding, message);
  const sinkWith = (behind: () => boolean, deferMaxMs: number, budgetBytes = 1024 * 1024) =>
    new LokiLogSink(
      {
        url: loki.url,
        legacyLabels: false,
        batchBytes: 1024,
        batchIntervalMs: 100,
        deferMaxMs,
        timeoutMs: 2000,
      },
      10_000,
      new LogBudget(budgetBytes),
      new Logger('loki-sink-spec'),
      behind,
    );
  const until = async (done: () => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return done();
  };

  it('holds a full batch while the Conveyor sink is busy, and pushes it once that is idle', async () => {
    let busy = true;
    const sink = sinkWith(() => busy, 5000);
    const before = loki.entries({ driver: 'loki-driver' }).length;
    for (let i = 0; i < 50; i++) sink.write(line(`held line ${i} ${'x'.repeat(40)}`)); // > batchBytes
    expect(await until(() => loki.entries({ driver: 'loki-driver' }).length > before, 300)).toBe(false);
    busy = false;
    // Every full batch goes at once (the last lines wait for the interval, or for close()).
    expect(await until(() => loki.entries({ driver: 'loki-driver' }).length >= before + 45, 2000)).toBe(true);
    await sink.close(2000);
    expect(loki.entries({ driver: 'loki-driver' }).length).toBe(before + 50);
    expect(sink.stats.sent).toBe(50);
  });

  it('pushes anyway once its oldest line is deferMaxMs old (a flood, or NATS that never answers)', async () => {
    const sink = sinkWith(() => true, 400);
    const before = loki.entries({ driver: 'loki-driver' }).length;
    const started = Date.now();
    for (let i = 0; i < 50; i++) sink.write(line(`late line ${i} ${'x'.repeat(40)}`));
    expect(await until(() => loki.entries({ driver: 'loki-driver' }).length >= before + 50, 3000)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    await sink.close(2000);
    expect(sink.stats.sent).toBe(50);
  });

  it('pushes at once, the Conveyor sink busy or not, when waiting would fill half its byte budget', async () => {
    // 60 lines cost about 9 KiB buffered (message and record): over half of a 12 KiB budget.
    const sink = sinkWith(() => true, 60_000, 12 * 1024);
    const before = loki.entries({ driver: 'loki-driver' }).length;
    try {
      for (let i = 0; i < 60; i++) sink.write(line(`pressed line ${i} ${'x'.repeat(40)}`));
      expect(await until(() => loki.entries({ driver: 'loki-driver' }).length > before, 2000)).toBe(true);
      // Nothing was refused for want of room: waiting gave way before the budget ran out.
      expect(sink.stats.dropped.budget).toBe(0);
    } finally {
      // Closing ends every wait (the rest is pushed now), failed assertions or not.
      await sink.close(2000);
    }
    expect(sink.stats.sent).toBe(60);
  });

  it('ends a push Loki never answers at timeoutMs, collections running meanwhile, and sends it once Loki answers', async () => {
    // Node 20's fetch can lose a request's abort signal after a collection (nodejs/node#55428):
    // the sink's own deadline must hold anyway, or every line behind the push waits for good.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const warnings: string[] = [];
    const logger = {
      log: () => undefined,
      error: () => undefined,
      warn: (m: unknown) => void warnings.push(String(m)),
    };
    const sink = new LokiLogSink(
      {
        url: loki.url,
        legacyLabels: false,
        batchBytes: 1024,
        batchIntervalMs: 10,
        deferMaxMs: 10,
        timeoutMs: 300,
      },
      10_000,
      new LogBudget(1024 * 1024),
      logger,
      () => false,
    );
    const before = loki.entries({ driver: 'loki-driver' }).length;
    loki.hang(true);
    try {
      const started = Date.now();
      sink.write(line('pushed while Loki hangs'));
      const collecting = setInterval(gc, 20);
      const failedInTime = await until(() => warnings.length > 0, 3000);
      clearInterval(collecting);
      expect(failedInTime).toBe(true);
      expect(warnings[0]).toMatch(/no answer within 300 ms.*retrying/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      loki.hang(false);
    }
    // The retry (after 0.5 s of backoff) is answered.
    expect(await until(() => sink.stats.sent === 1, 3000)).toBe(true);
    expect(loki.entries({ driver: 'loki-driver' }).length).toBe(before + 1);
    await sink.close(1000);
  });
});
