import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConveyorTestEnv,
  DriverProcess,
  makeResource,
  publishDriverMessage,
  waitForConsumer,
  waitForExit,
} from '@conveyor-ci/testing';
import type { PipelineEvent } from '@conveyor-ci/nestjs';
import { settledDeliveries } from '../support/consumer-deliveries';
import { startReferenceDriver } from '../support/reference-driver';

const DRIVER = 'shell-runner-e2e';

let env: ConveyorTestEnv;
let driver: DriverProcess;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shell-e2e-'));
  env = await ConveyorTestEnv.start();
  // Step output into the process log too: these tests read it there (and check it is masked).
  driver = await startReferenceDriver(env, DRIVER, { CONVEYOR_LOG_STREAMS_TO_PROCESS_LOG: 'true' });
  await waitForConsumer(env.jsm, DRIVER);
});

afterAll(async () => {
  await driver?.stop('SIGTERM');
  await env?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function runPipeline(name: string, spec: unknown): Promise<PipelineEvent> {
  const sent = await publishDriverMessage(env.js, {
    driver: DRIVER,
    resource: makeResource({ name, resource: 'pipeline', pipeline: 'e2e', spec }),
  });
  return env.results.waitForRun(sent.message.run_id, 30_000).catch((err) => {
    throw new Error(`${err.message}; driver said:\n${driver.tail()}`);
  });
}

describe('reference shell-runner driver (built, as a child process)', () => {
  it('runs a two-step pipeline and reports both exit codes and durations', async () => {
    const result = await runPipeline('two-steps', {
      steps: [
        { name: 'greet', run: 'echo "hello $WHO"' },
        { name: 'count', run: 'for i in 1 2; do echo "line $i"; done' },
      ],
      env: { WHO: 'e2e' },
    });
    expect(result.driverresult).toMatchObject({ success: true, message: '2 step(s) passed', driver: DRIVER });
    const data = result.driverresult.data as {
      exitCodes: number[];
      steps: { name: string; exitCode: number; durationMs: number }[];
    };
    expect(data.exitCodes).toEqual([0, 0]);
    expect(data.steps.map((s) => s.name)).toEqual(['greet', 'count']);
    for (const step of data.steps) expect(step.durationMs).toBeGreaterThanOrEqual(0);
    // Step output reached the run's logger, with the run's fields.
    const line = await driver.waitForLine((l) => l.json?.msg === 'hello e2e');
    expect(line.json).toMatchObject({
      run_id: result.run_id,
      step: 'greet',
      stream: 'stdout',
      resource: 'two-steps',
    });
    await driver.waitForLine((l) => l.json?.msg === 'line 2' && l.json?.step === 'count');
  });

  it('masks the values of its step env in every log line', async () => {
    const result = await runPipeline('masked', {
      steps: [{ name: 'leak', run: 'echo "token=$TOKEN"; echo "$TOKEN" >&2' }],
      env: { TOKEN: 's3cr3t-value' },
    });
    expect(result.driverresult.success).toBe(true);
    await driver.waitForLine((l) => l.json?.msg === 'token=***' && l.json?.step === 'leak');
    await driver.waitForLine((l) => l.json?.msg === '***' && l.json?.stream === 'stderr');
    expect(driver.lines.filter((l) => l.raw.includes('s3cr3t-value'))).toEqual([]);
  });

  it('stops at the first failing step and does not run later steps', async () => {
    const marker = join(dir, 'should-not-exist');
    const result = await runPipeline('fails', {
      steps: [
        { name: 'ok', run: 'true' },
        { name: 'broken', run: 'echo about to fail; exit 3' },
        { name: 'never', run: `touch ${marker}` },
      ],
    });
    expect(result.driverresult).toMatchObject({
      success: false,
      message: 'step "broken" failed with exit code 3',
    });
    expect((result.driverresult.data as { exitCodes: number[] }).exitCodes).toEqual([0, 3]);
    expect(existsSync(marker)).toBe(false);
  });

  it('leaves no process behind when a step that started a background grandchild times out', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const result = await runPipeline('times-out', {
      steps: [{ name: 'hang', run: `sleep 120 & echo $! > ${pidFile}; sleep 120`, timeoutSeconds: 1 }],
    });
    expect(result.driverresult.success).toBe(false);
    expect(result.driverresult.message).toMatch(/^step "hang" timed out after/);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(await waitForExit(grandchild)).toBe(true);
  });

  it('reports an invalid spec as a failure result, and everything ends settled', async () => {
    // Checked against the `pipeline` definition by the generated validator before the handler runs.
    const result = await runPipeline('invalid', { steps: 'nope' });
    expect(result.driverresult).toMatchObject({
      success: false,
      message:
        'spec does not match resource definition "pipeline" (version 0.0.1): ' +
        'spec.steps must be array (rule "type" at #/properties/steps/type)',
      data: { specViolation: { path: '/steps', rule: 'type' } },
    });
    // One delivery per pipeline of this file, none redelivered.
    expect(await settledDeliveries(env.jsm, DRIVER)).toBe(5);
    expect(env.results.results).toHaveLength(5);
  });
});
