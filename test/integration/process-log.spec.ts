import { Controller, INestApplication } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Writable } from 'node:stream';
import { Logger as PinoNestLogger, LoggerModule } from 'nestjs-pino';
import { Reconcile, ReconcileContext, Resource, RetryableError } from '@conveyor-ci/nestjs';
import { makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { storedRunLogs } from '../support/stored-logs';

const suite = useDriverApps();
const { start, expectSettled, closeAfterTest } = suite;

@Controller()
class StepDriver {
  @Reconcile({ resource: 'step', maxAttempts: 2 })
  run(@Payload() resource: Resource<{ fail?: 'throw' | 'retry' }>, @Ctx() ctx: ReconcileContext) {
    ctx.logger.info('step greet: exit 0', { stream: 'stdout' });
    if (resource.spec.fail === 'throw') throw new Error('compiler exploded');
    if (resource.spec.fail === 'retry') throw new RetryableError('registry busy', { delayMs: 50 });
    return { success: true };
  }
}

/** Everything the process writes to stdout and stderr while the test runs (Nest's ConsoleLogger). */
function captureConsoleOutput(): string[] {
  const lines: string[] = [];
  const restore: (() => void)[] = [];
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write;
    restore.push(() => (stream.write = write as typeof stream.write));
  }
  closeAfterTest(async () => restore.forEach((r) => r()));
  return lines;
}

/** A pino destination kept in memory: one parsed object per line. */
function pinoLines(): { stream: Writable; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { stream, lines };
}

async function runStep(spec: { fail?: 'throw' | 'retry' }): Promise<string> {
  const sent = await publishDriverMessage(suite.env.js, {
    resource: makeResource({ name: 'build-1', resource: 'step', spec }),
  });
  await suite.env.results.waitForRun(sent.message.run_id);
  return sent.message.run_id;
}

// Nest colours its output: the escape sequences go before matching.
const ansi = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

describe("the process log with Nest's logger", () => {
  it('prints one line per entry with the run fields appended', async () => {
    const out = captureConsoleOutput();
    const name = uniqueDriverName();
    await start(name, [StepDriver], { logger: ['log', 'warn', 'error'] });
    const runId = await runStep({});
    const lines = out.map((l) => l.replace(ansi, '')).filter((l) => l.includes('step greet'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `LOG \\[${name}\\] step greet: exit 0 stream=stdout run=${runId} resource=step/build-1 event=create$`,
      ),
    );
    await expectSettled(name, 1);
  });

  it('logs a handler failure once, at WARN without a stack, and ends the run log with its reason', async () => {
    const out = captureConsoleOutput();
    const name = uniqueDriverName();
    await start(name, [StepDriver], { logger: ['log', 'warn', 'error'] });
    const runId = await runStep({ fail: 'throw' });
    await expectSettled(name, 1);
    const plain = out.map((l) => l.replace(ansi, ''));
    const about = plain.filter((l) => l.includes('compiler exploded'));
    expect(about).toHaveLength(1);
    // The short run id, the resource and event, a duration and the verb in plain words.
    expect(about[0]).toMatch(
      new RegExp(
        ` WARN \\[ConveyorTransport\\] failed run ${runId.slice(0, 8)} step/build-1 create in \\d+ ms: handler failed: compiler exploded; acked$`,
      ),
    );
    expect(about[0]).not.toContain(runId);
    expect(plain.filter((l) => /^\s+at /.test(l) || l.includes('RpcExceptionsHandler'))).toEqual([]);
    const stored = await storedRunLogs(suite.env.jsm, runId);
    expect(stored.filter((l) => l.log.message.includes('compiler exploded'))).toHaveLength(1);
    expect(stored.at(-1)!.log.message).toBe('failed: handler failed: compiler exploded');
  });
});

describe('the process log with nestjs-pino', () => {
  // nestjs-pino keeps its first out-of-request logger for the whole process: one stream for all apps here.
  const { stream, lines } = pinoLines();
  async function startWithPino(name: string) {
    await start(name, [StepDriver], {
      logger: ['log', 'warn', 'error'],
      imports: [LoggerModule.forRoot({ pinoHttp: { stream, autoLogging: false } })],
      configure: (app: INestApplication) => app.useLogger(app.get(PinoNestLogger)),
    });
  }

  it('writes each run line as one JSON object carrying the run fields', async () => {
    const name = uniqueDriverName();
    await startWithPino(name);
    const runId = await runStep({});
    await expectSettled(name, 1);
    // The handler's line (the transport's settlement line carries the run's fields too).
    expect(lines.filter((l) => l.run_id === runId && l.context === name)).toEqual([
      expect.objectContaining({
        level: 30,
        context: name,
        run_id: runId,
        resource: 'build-1',
        resource_type: 'step',
        event: 'create',
        stream: 'stdout',
      }),
    ]);
  });

  it('never logs an expected RetryableError at ERROR, and logs each attempt once', async () => {
    const name = uniqueDriverName();
    await startWithPino(name);
    const runId = await runStep({ fail: 'retry' });
    await expectSettled(name, 2);
    const about = lines.filter((l) => JSON.stringify(l).includes(runId));
    // The handler's own line on each attempt, then the settlement line of each attempt.
    expect(about.map((l) => [l.level, l.msg])).toEqual([
      [30, 'step greet: exit 0'],
      [
        40,
        expect.stringMatching(
          /^retried run \w{8} step\/build-1 create in \d+ ms: attempt 1 of 2 asks for a retry in 50 ms: registry busy; will retry in 50 ms$/,
        ),
      ],
      [30, 'step greet: exit 0'],
      [
        40,
        expect.stringMatching(
          /^gave-up run \w{8} step\/build-1 create in \d+ ms \(delivery 2\): gave up after 2 attempts: registry busy; acked$/,
        ),
      ],
    ]);
    // The full run id and the rest as the JSON line's own fields.
    expect(about.at(-1)).toMatchObject({
      run_id: runId,
      resource: 'build-1',
      resource_type: 'step',
      event: 'create',
      outcome: 'gave-up',
      action: 'ack',
      delivery: 2,
      duration_ms: expect.any(Number),
    });
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    const stored = await storedRunLogs(suite.env.jsm, runId);
    expect(stored.map((l) => l.log.message).filter((m) => m.includes('registry busy'))).toEqual([
      expect.stringMatching(/^retried: attempt 1 of 2 asks for a retry in 50 ms: registry busy$/),
      expect.stringMatching(/^gave-up: gave up after 2 attempts: registry busy$/),
    ]);
  });
});
