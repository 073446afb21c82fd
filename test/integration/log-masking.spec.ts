import { Controller, INestApplication, Injectable, OnModuleInit } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Logger as PinoNestLogger, LoggerModule } from 'nestjs-pino';
import { ConveyorLog, DriverLogger, Reconcile, ReconcileContext } from '@conveyor-ci/nestjs';
import { subscribeRunLogs } from '@conveyor-ci/nestjs/internal';
import { LokiServer, eventually, makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { storedRunLogs } from '../support/stored-logs';

const suite = useDriverApps();
const { start, expectSettled, closeAfterTest } = suite;

const STEP_TOKEN = 'stepTokenABC123';
const BOOT_SECRET = 'bootSecret-9f8e7d';

/** Every line the app's Nest logger is given (the process log), as printed. */
function processLogOf(lines: string[]) {
  const keep = (m: unknown) => void lines.push(typeof m === 'string' ? m : JSON.stringify(m));
  return { log: keep, warn: keep, error: keep, debug: keep, verbose: keep };
}

@Controller()
class Deployer {
  @Reconcile({ resource: 'deploy' })
  run(@Ctx() ctx: ReconcileContext) {
    ctx.logger.mask(STEP_TOKEN);
    ctx.logger.info(`deploying with ${STEP_TOKEN}`, {
      env: { TOKEN: STEP_TOKEN, HOME: '/root' },
      argv: ['--token', STEP_TOKEN],
      err: new Error(`auth failed for ${STEP_TOKEN}`, { cause: new Error(`401 for ${STEP_TOKEN}`) }),
    });
    ctx.logger.info(`boot secret ${BOOT_SECRET}`, { nested: { value: BOOT_SECRET } });
    throw new Error(`gave up with ${STEP_TOKEN} and ${BOOT_SECRET}`);
  }
}

/** Masks a value it read at startup, outside any run, with the injected DriverLogger. */
@Injectable()
class BootSecrets implements OnModuleInit {
  constructor(private readonly logger: DriverLogger) {}
  onModuleInit() {
    this.logger.mask(BOOT_SECRET);
    this.logger.info('startup done', { config: { key: BOOT_SECRET } });
  }
}

describe('masking of fields and Errors (real nats-server, server-faithful Loki)', () => {
  it('hides a nested secret and a masked Error in the stored log, live lines, Loki and the process log', async () => {
    const processLog: string[] = [];
    const loki = await LokiServer.start();
    closeAfterTest(() => loki.close());
    const name = uniqueDriverName();
    const runId = randomUUID();
    const live: ConveyorLog[] = [];
    const sub = subscribeRunLogs(suite.env.nc, runId, (log) => live.push(log));
    closeAfterTest(async () => sub.unsubscribe());
    await start(name, [Deployer], {
      providers: [BootSecrets],
      options: { loki: { url: loki.url, batchIntervalMs: 50 } },
      logger: ['log', 'warn', 'error'],
      configure: (app) => app.useLogger(processLogOf(processLog)),
    });
    await suite.env.nc.flush();
    await publishDriverMessage(suite.env.js, {
      driver: name,
      runId,
      resource: makeResource({ name: 'app', resource: 'deploy', spec: {} }),
    });
    const result = await suite.env.results.waitForRun(runId);
    expect(result.driverresult).toMatchObject({ success: false, message: 'gave up with *** and ***' });
    const stored = (await storedRunLogs(suite.env.jsm, runId)).map((l) => l.log.message);
    expect(stored).toEqual([
      'deploying with ***',
      'boot secret ***',
      'failed: handler failed: gave up with *** and ***',
    ]);
    await eventually(() => live.length === 3, 'the live lines');
    await eventually(() => loki.entries({ driver: name }).length === 3, 'the lines in Loki', 10_000);

    // The process log prints fields: nested values masked, the Error with its message and stack.
    const deploying = processLog.filter((l) => l.startsWith('deploying with'));
    expect(deploying).toHaveLength(1);
    expect(deploying[0]).toContain(' env={"TOKEN":"***","HOME":"/root"} argv=["--token","***"] ');
    expect(deploying[0]).toMatch(
      / err=\{"name":"Error","message":"auth failed for \*\*\*","stack":"Error: auth failed for \*\*\*\\n {4}at .*","cause":\{"name":"Error","message":"401 for \*\*\*","stack":"Error: 401 for \*\*\*\\n/,
    );
    // mask() at startup, outside any run, hides the value process-wide from then on.
    expect(processLog).toContain('startup done config={"key":"***"}');
    expect(processLog.find((l) => l.startsWith('boot secret'))).toMatch(
      /^boot secret \*\*\* nested=\{"value":"\*\*\*"\}/,
    );

    const everything = [
      JSON.stringify(result),
      ...stored,
      JSON.stringify(live),
      JSON.stringify(loki.entries({ driver: name })),
      ...processLog,
    ].join('\n');
    expect(everything).not.toContain(STEP_TOKEN);
    expect(everything).not.toContain(BOOT_SECRET);
    await expectSettled(name, 1);
  });
});

@Controller()
class Chatty {
  @Reconcile({ resource: 'chatty' })
  run(@Ctx() ctx: ReconcileContext) {
    for (let i = 1; i <= 3; i++) ctx.logger.info(`line ${i}`);
    return { success: true };
  }
}

describe('subscribeRunLogs callbacks', () => {
  it('reports a callback that throws, to onError or as a warning, and keeps the subscription', async () => {
    const processLog: string[] = [];
    const name = uniqueDriverName();
    await start(name, [Chatty], { configure: (app) => app.useLogger(processLogOf(processLog)) });
    const runId = randomUUID();
    const seen: string[] = [];
    const errors: unknown[] = [];
    const withOnError = subscribeRunLogs(
      suite.env.nc,
      runId,
      (log) => {
        seen.push(log.message);
        if (log.message === 'line 1') throw new Error('consumer broke on line 1');
      },
      { onError: (err) => errors.push(err) },
    );
    const unseen: string[] = [];
    const withoutOnError = subscribeRunLogs(suite.env.nc, runId, (log) => {
      unseen.push(log.message);
      if (log.message === 'line 2') throw new Error('consumer broke on line 2');
    });
    closeAfterTest(async () => {
      withOnError.unsubscribe();
      withoutOnError.unsubscribe();
    });
    await suite.env.nc.flush();
    await publishDriverMessage(suite.env.js, {
      driver: name,
      runId,
      resource: makeResource({ name: 'c', resource: 'chatty', spec: {} }),
    });
    await suite.env.results.waitForRun(runId);
    await eventually(() => seen.length === 3 && unseen.length === 3, 'every line on both subscriptions');
    expect(seen).toEqual(['line 1', 'line 2', 'line 3']);
    expect(unseen).toEqual(['line 1', 'line 2', 'line 3']);
    expect(errors).toEqual([expect.objectContaining({ message: 'consumer broke on line 1' })]);
    const warnings = processLog.filter((l) => l.includes('consumer broke'));
    expect(warnings).toEqual([expect.stringContaining(`live.logs.${runId}.*`)]);
    expect(warnings[0]).toContain('consumer broke on line 2');
    await expectSettled(name, 1);
  });
});

// Last in the file: nestjs-pino keeps its first out-of-request logger for the whole process.
describe('masking of fields under nestjs-pino', () => {
  it('writes masked nested fields and the Error as JSON properties', async () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const name = uniqueDriverName();
    await start(name, [Deployer], {
      providers: [BootSecrets],
      logger: ['log', 'warn', 'error'],
      imports: [LoggerModule.forRoot({ pinoHttp: { stream, autoLogging: false } })],
      configure: (app: INestApplication) => app.useLogger(app.get(PinoNestLogger)),
    });
    const runId = randomUUID();
    await publishDriverMessage(suite.env.js, {
      driver: name,
      runId,
      resource: makeResource({ name: 'app', resource: 'deploy', spec: {} }),
    });
    await suite.env.results.waitForRun(runId);
    await expectSettled(name, 1);
    const deploying = lines.find((l) => l.run_id === runId && l.msg === 'deploying with ***');
    expect(deploying).toMatchObject({
      env: { TOKEN: '***', HOME: '/root' },
      argv: ['--token', '***'],
      err: {
        message: expect.stringMatching(/^auth failed for \*\*\*/),
        stack: expect.stringMatching(/^Error: auth failed for \*\*\*\n\s+at /),
      },
    });
    const printed = JSON.stringify(lines);
    expect(printed).not.toContain(STEP_TOKEN);
    expect(printed).not.toContain(BOOT_SECRET);
  });
});
