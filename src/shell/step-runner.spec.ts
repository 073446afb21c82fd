import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForExit } from '@conveyor-ci/testing';
import { parsePipelineSpec } from './pipeline-spec';
import { createLineStream } from '../../libs/conveyor/src/logger/line-stream';
import { describeFailure, runStep } from './step-runner';

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

describe('parsePipelineSpec', () => {
  it('accepts a valid spec', () => {
    expect(
      parsePipelineSpec({ steps: [{ name: 'a', run: 'true', timeoutSeconds: 5 }], env: { A_1: 'x' } }),
    ).toEqual({
      steps: [{ name: 'a', run: 'true', timeoutSeconds: 5 }],
      env: { A_1: 'x' },
    });
  });

  it.each([
    [null, /"steps"/],
    [{ steps: [] }, /"steps" must be a non-empty array/],
    [{ steps: [{ run: 'x' }] }, /steps\[0\]\.name/],
    [{ steps: [{ name: 'a', run: '' }] }, /steps\[0\]\.run/],
    [{ steps: [{ name: 'a', run: 'x', timeoutSeconds: -1 }] }, /timeoutSeconds/],
    [{ steps: [{ name: 'a', run: 'x' }], env: { 'BAD-NAME': 'x' } }, /not a valid variable name/],
    [{ steps: [{ name: 'a', run: 'x' }], env: { A: 1 } }, /env A must be a string/],
  ])('rejects %j', (spec, message) => {
    expect(() => parsePipelineSpec(spec)).toThrow(message);
  });
});
