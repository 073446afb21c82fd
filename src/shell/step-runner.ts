import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { StepSpec } from './pipeline-spec';

/** How one step ended. */
export interface StepReport {
  name: string;
  /** Exit code, or null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
  timedOut: boolean;
  /** Stopped because the run was aborted (reconcile timeout or shutdown). */
  aborted: boolean;
}

export interface RunStepOptions {
  /** The step's own variables (the pipeline spec's `env`): they win over {@link baseEnv}. */
  env?: Record<string, string>;
  /**
   * The driver's variables the step may see. Default `stepBaseEnv(process.env).env`: never the
   * driver's whole environment, which holds its credentials.
   */
  baseEnv?: Record<string, string>;
  signal?: AbortSignal;
  /** Where the step's output goes, e.g. `ctx.logger.stream({ fields: { stream: 'stdout' } })`. Ended with the step. */
  output: { stdout: Writable; stderr: Writable };
  /** Between SIGTERM and SIGKILL of the process group. */
  killGraceMs?: number;
  /** Hears the step's group killer once the shell started (the driver hands it to `ctx.onCleanup`). */
  onSpawn?: (killGroup: () => void) => void;
}

/**
 * The driver's variables every step gets without asking: what a shell and common tools need to
 * behave (find programs, a home, locale, time zone, temp dir, who and what terminal). Anything else
 * of the driver's environment is opt-in through `SHELL_RUNNER_PASS_ENV`.
 */
export const DEFAULT_STEP_ENV: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'SHELL',
  'LANG',
  'LC_ALL',
  'TZ',
  'TMPDIR',
  'TERM',
];

/**
 * The driver's own configuration: its NATS and API credentials, TLS keys, Loki token. A step runs
 * the resource's commands, which anyone able to create a resource writes: none of this may reach it.
 */
const DRIVER_ONLY_ENV = /^(CONVEYOR_|LOKI_)/;
/**
 * Secrets at or above this length are also refused under another name (`MY_TOKEN=$CONVEYOR_NATS_TOKEN`);
 * shorter values (`1`, `true`) are too common to be told from an ordinary value.
 */
const MIN_SECRET_LENGTH = 6;

/** What {@link stepBaseEnv} passes, and the names it refused although `SHELL_RUNNER_PASS_ENV` asked. */
export interface StepBaseEnv {
  env: Record<string, string>;
  refused: string[];
}

/**
 * The part of the driver's environment its steps may see: {@link DEFAULT_STEP_ENV} plus the names in
 * `SHELL_RUNNER_PASS_ENV` (comma-separated), each only when set. A name is refused, even when listed,
 * when it is the driver's (`CONVEYOR_*`, `LOKI_*`) or its value is one of those variables' values
 * (a credential copied under another name): the caller warns about {@link StepBaseEnv.refused}.
 */
export function stepBaseEnv(driverEnv: NodeJS.ProcessEnv | Record<string, string | undefined>): StepBaseEnv {
  const driverValues = new Set(
    Object.entries(driverEnv)
      .filter(([name, value]) => DRIVER_ONLY_ENV.test(name) && value && value.length >= MIN_SECRET_LENGTH)
      .map(([, value]) => value),
  );
  const listed = (driverEnv.SHELL_RUNNER_PASS_ENV ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const env: Record<string, string> = {};
  const refused: string[] = [];
  for (const name of new Set([...DEFAULT_STEP_ENV, ...listed])) {
    const value = driverEnv[name];
    if (DRIVER_ONLY_ENV.test(name) || (value !== undefined && driverValues.has(value))) {
      refused.push(name);
      continue;
    }
    if (value !== undefined) env[name] = value;
  }
  return { env, refused };
}

/**
 * Runs a step with `/bin/sh -c` in its own process group (`detached`), so a timeout or abort kills
 * the whole group: a shell's background children and grandchildren die with it, which killing the
 * shell alone would not do. When the shell exits, whatever it left running in its group is killed
 * too: a CI step must not leave daemons behind (nor hold its output pipes open forever).
 */
export function runStep(step: StepSpec, options: RunStepOptions): Promise<StepReport> {
  const started = Date.now();
  const child = spawn('/bin/sh', ['-c', step.run], {
    detached: true,
    env: { ...(options.baseEnv ?? stepBaseEnv(process.env).env), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let timedOut = false;
  let aborted = false;
  let exited = false;
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* the group is gone */
    }
  };
  options.onSpawn?.(() => killGroup('SIGKILL'));
  const stop = () => {
    killGroup('SIGTERM');
    setTimeout(() => killGroup('SIGKILL'), options.killGraceMs ?? 2000).unref();
  };
  const timer = step.timeoutSeconds
    ? setTimeout(() => {
        timedOut = true;
        stop();
      }, step.timeoutSeconds * 1000)
    : undefined;
  const onAbort = () => {
    aborted = true;
    stop();
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  child.stdout!.pipe(options.output.stdout);
  child.stderr!.pipe(options.output.stderr);
  // The report waits for the sinks to take the last line, so no output follows the result.
  const drained = Promise.all([finished(options.output.stdout), finished(options.output.stderr)]).catch(
    () => undefined,
  );

  return new Promise<StepReport>((resolve, reject) => {
    let exit: { code: number | null; signal: NodeJS.Signals | null } = { code: null, signal: null };
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      exited = true;
      exit = { code, signal };
      killGroup('SIGKILL'); // leftovers of a finished step
    });
    child.once('close', async () => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (!exited) killGroup('SIGKILL');
      await drained;
      resolve({
        name: step.name,
        exitCode: exit.code,
        signal: exit.signal,
        durationMs: Date.now() - started,
        timedOut,
        aborted,
      });
    });
  });
}

/** One line on why a step failed, for the result message. */
export function describeFailure(report: StepReport): string {
  if (report.timedOut) return `timed out after ${(report.durationMs / 1000).toFixed(1)} s`;
  if (report.aborted) return 'was aborted';
  if (report.exitCode === null) return `was killed by ${report.signal}`;
  return `failed with exit code ${report.exitCode}`;
}
