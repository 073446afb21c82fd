import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForExit } from '@conveyor-ci/testing';
import { PipelineSpecValidator } from '../generated';
import { checkPipelineSpec } from './pipeline-spec';
import { createLineStream } from '../../libs/conveyor/src/logger/line-stream';
import { describeFailure, runStep, stepBaseEnv } from './step-runner';

/** Collects each stream's lines as `stream:line`. */
const collect = (lines: string[] = []) => ({
  stdout: createLineStream((l) => lines.push(`stdout:${l}`)),
  stderr: createLineStream((l) => lines.push(`stderr:${l}`)),
});

describe('runStep (real /bin/sh)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'step-runner-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('streams stdout and stderr lines in order and reports the exit code', async () => {
    const lines: string[] = [];
    const report = await runStep(
      { name: 's', run: 'echo one; echo two >&2; printf "three"; exit 4' },
      { env: { X: 'y' }, output: collect(lines) },
    );
    expect(lines.filter((l) => l.startsWith('stdout'))).toEqual(['stdout:one', 'stdout:three']);
    expect(lines).toContain('stderr:two');
    expect(report).toMatchObject({ name: 's', exitCode: 4, signal: null, timedOut: false, aborted: false });
    expect(describeFailure(report)).toBe('failed with exit code 4');
  });

  it('passes the spec env to the step', async () => {
    const lines: string[] = [];
    await runStep(
      { name: 'env', run: 'echo "$GREETING"' },
      { env: { GREETING: 'hi there' }, output: collect(lines) },
    );
    expect(lines).toEqual(['stdout:hi there']);
  });

  it('kills the whole process group on timeout, background grandchildren included', async () => {
    const pidFile = join(dir, 'pid');
    const report = await runStep(
      { name: 't', run: `sleep 60 & echo $! > ${pidFile}; sleep 60`, timeoutSeconds: 0.5 },
      { output: collect(), killGraceMs: 200 },
    );
    expect(report.timedOut).toBe(true);
    expect(describeFailure(report)).toMatch(/^timed out after/);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(grandchild).toBeGreaterThan(0);
    expect(await waitForExit(grandchild)).toBe(true);
  });

  it('kills what a finished step left running in the background', async () => {
    const pidFile = join(dir, 'pid');
    const report = await runStep(
      { name: 'bg', run: `sleep 60 & echo $! > ${pidFile}; echo done` },
      { output: collect() },
    );
    expect(report.exitCode).toBe(0);
    expect(await waitForExit(Number(readFileSync(pidFile, 'utf8')))).toBe(true);
  });

  it('stops when the run is aborted', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const report = await runStep(
      { name: 'a', run: 'sleep 30' },
      { signal: controller.signal, output: collect() },
    );
    expect(report).toMatchObject({ aborted: true, exitCode: null, signal: 'SIGTERM' });
    expect(describeFailure(report)).toBe('was aborted');
  });
});

describe('the step environment (allow-listed)', () => {
  /** A driver's environment as deployed: its own credentials next to ordinary variables. */
  const driverEnv = {
    PATH: '/usr/bin:/bin',
    HOME: '/home/runner',
    LANG: 'C.UTF-8',
    CONVEYOR_NATS_PASSWORD: 'nats-secret-1',
    CONVEYOR_API_URL: 'http://conveyor:8080',
    LOKI_BEARER_TOKEN: 'loki-secret-2',
    CI_CACHE_DIR: '/cache',
    ALIAS_OF_SECRET: 'nats-secret-1',
    UNLISTED: 'x',
  };
  /** The variables the step saw, from its `env`. */
  const envSeenBy = async (options: Omit<Parameters<typeof runStep>[1], 'output'>) => {
    const lines: string[] = [];
    await runStep({ name: 'env', run: 'env' }, { ...options, output: collect(lines) });
    return Object.fromEntries(
      lines.map((l) => l.replace(/^stdout:/, '')).map((l) => [l.split('=')[0], l.slice(l.indexOf('=') + 1)]),
    );
  };

  it("never shows a step the driver's CONVEYOR_* / LOKI_* variables (process.env by default)", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, driverEnv);
    try {
      const seen = await envSeenBy({ env: { GREETING: 'hi' } });
      expect(seen).toMatchObject({ GREETING: 'hi', PATH: '/usr/bin:/bin', HOME: '/home/runner' });
      expect(Object.keys(seen).filter((name) => /^(CONVEYOR_|LOKI_)/.test(name))).toEqual([]);
      expect(seen).not.toHaveProperty('UNLISTED');
      expect(JSON.stringify(seen)).not.toMatch(/secret/);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });

  it('passes what SHELL_RUNNER_PASS_ENV names, and refuses CONVEYOR_*, LOKI_* and copies of credentials', () => {
    const { env, refused } = stepBaseEnv({
      ...driverEnv,
      SHELL_RUNNER_PASS_ENV:
        ' CI_CACHE_DIR, CONVEYOR_NATS_PASSWORD,LOKI_BEARER_TOKEN,ALIAS_OF_SECRET,,MISSING',
    });
    expect(env).toEqual({
      PATH: '/usr/bin:/bin',
      HOME: '/home/runner',
      LANG: 'C.UTF-8',
      CI_CACHE_DIR: '/cache',
    });
    expect(refused).toEqual(['CONVEYOR_NATS_PASSWORD', 'LOKI_BEARER_TOKEN', 'ALIAS_OF_SECRET']);
  });

  it("gives the step its own env over the driver's, and only the allowed driver variables", async () => {
    const { env: baseEnv } = stepBaseEnv({
      ...driverEnv,
      SHELL_RUNNER_PASS_ENV: 'CI_CACHE_DIR,CONVEYOR_API_URL',
    });
    const seen = await envSeenBy({ baseEnv, env: { HOME: '/workspace', CONVEYOR_STEP: 'mine' } });
    expect(seen).toMatchObject({ CI_CACHE_DIR: '/cache', HOME: '/workspace', CONVEYOR_STEP: 'mine' });
    expect(seen).not.toHaveProperty('CONVEYOR_API_URL');
    expect(seen).not.toHaveProperty('CONVEYOR_NATS_PASSWORD');
  });
});

describe("the pipeline spec: the generated validator (shape), then the driver's own rules", () => {
  it('accepts a valid spec, keeping only the fields the driver reads', () => {
    const spec = { steps: [{ name: 'a', run: 'true', timeoutSeconds: 5, note: 'x' }], env: { A_1: 'x' } };
    expect(PipelineSpecValidator.check(spec)).toBeUndefined();
    expect(checkPipelineSpec(spec)).toEqual({
      steps: [{ name: 'a', run: 'true', timeoutSeconds: 5 }],
      env: { A_1: 'x' },
    });
  });

  it.each([
    [null, { path: '', rule: 'type' }],
    [{ steps: 'nope' }, { path: '/steps', rule: 'type' }],
    [{ steps: [{ run: 'x' }] }, { path: '/steps/0', rule: 'required' }],
    [
      { steps: [{ name: 'a', run: 'x' }], env: { A: 1 } },
      { path: '/env/A', rule: 'type' },
    ],
  ])('the validator rejects %j', (spec, violation) => {
    expect(PipelineSpecValidator.check(spec)).toMatchObject(violation);
  });

  it.each([
    [{ steps: [] }, /"steps" must be a non-empty array/],
    [{ steps: [{ name: ' ', run: 'x' }] }, /steps\[0\]\.name/],
    [{ steps: [{ name: 'a', run: '' }] }, /steps\[0\]\.run/],
    [{ steps: [{ name: 'a', run: 'x', timeoutSeconds: -1 }] }, /timeoutSeconds/],
    [{ steps: [{ name: 'a', run: 'x' }], env: { 'BAD-NAME': 'x' } }, /not a valid variable name/],
  ])('the driver rejects %j, which the schema allows', (spec, message) => {
    expect(PipelineSpecValidator.check(spec)).toBeUndefined();
    expect(() => checkPipelineSpec(spec)).toThrow(message);
  });
});
