import { Controller, Logger } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { DriverResult, PerResourcePolicy, Reconcile, ReconcileContext } from '@conveyor-ci/nestjs';
import { PipelineResource, PipelineSpecValidator } from '../generated';
import { checkPipelineSpec } from './pipeline-spec';
import { StepReport, describeFailure, runStep, stepBaseEnv } from './step-runner';

/**
 * Events that run a pipeline's steps: `create` (a first step) and `process` (a later one), what
 * Conveyor 0.6.x sends. Any other event (`update`, and above all `delete`, which newer Conveyor
 * versions send) must not run a build: it is acked without running anything. `SHELL_RUNNER_EVENTS`
 * (comma-separated) replaces the list; it is read when the module loads, as decorators are.
 */
export function stepEvents(raw = process.env.SHELL_RUNNER_EVENTS): string[] {
  const events = (raw ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  return events.length > 0 ? events : ['create', 'process'];
}

/**
 * `SHELL_RUNNER_PER_RESOURCE=serialize|supersede`: one build per pipeline resource at a time across
 * every replica (`@Reconcile({ perResource })`); unset: off. Read when the module loads.
 */
export function perResourcePolicy(
  raw = process.env.SHELL_RUNNER_PER_RESOURCE,
): PerResourcePolicy | undefined {
  const value = raw?.trim();
  if (!value) return undefined;
  if (value === 'serialize' || value === 'supersede') return value;
  throw new Error(`SHELL_RUNNER_PER_RESOURCE=${JSON.stringify(raw)} must be "serialize" or "supersede"`);
}

/** Env values shorter than this are not masked in step output. */
const MIN_MASKED_LENGTH = 6;

/** `data` of the driver's results. */
export interface ShellRunData {
  steps: StepReport[];
  exitCodes: (number | null)[];
  /** The run's log lines, and how many could not be stored (its log says so too). */
  log: { lines: number; dropped: number };
}

/**
 * The driver's variables its steps see (`DEFAULT_STEP_ENV` plus `SHELL_RUNNER_PASS_ENV`), read once
 * when the driver starts; a variable refused there (`CONVEYOR_*`, `LOKI_*`, a copy of a credential)
 * is named in a warning, so an operator who listed it learns why a step does not see it.
 */
export function driverEnvForSteps(
  driverEnv: NodeJS.ProcessEnv = process.env,
  warn: (message: string) => void = (message) => new Logger(ShellDriver.name).warn(message),
): Record<string, string> {
  const { env, refused } = stepBaseEnv(driverEnv);
  if (refused.length > 0) {
    warn(
      `SHELL_RUNNER_PASS_ENV: not passing ${refused.join(', ')} to steps: the driver's own ` +
        'configuration and credentials (CONVEYOR_*, LOKI_* or a copy of one) never reach a step',
    );
  }
  return env;
}

/**
 * The reference driver: runs a `pipeline` resource's shell steps in order, streams their output to
 * the run's logger and stops at the first failing step. A step's environment is its spec's `env`
 * over an allow-listed part of the driver's (see {@link driverEnvForSteps}), never the whole of it.
 */
@Controller()
export class ShellDriver {
  private readonly baseEnv = driverEnvForSteps();

  // `spec`: a resource whose spec does not match the `pipeline` definition ends as a failure result
  // naming the path and the rule, before this runs.
  @Reconcile({
    resource: 'pipeline',
    events: stepEvents(),
    perResource: perResourcePolicy(),
    spec: PipelineSpecValidator,
  })
  async run(
    @Payload() resource: PipelineResource,
    @Ctx() ctx: ReconcileContext,
  ): Promise<DriverResult<ShellRunData>> {
    const spec = checkPipelineSpec(resource.spec);
    // Step env often carries tokens: never let one reach a log line. Short values (`1`, `true`) are
    // left alone: masking them would blank ordinary output, and they are not secrets.
    ctx.logger.mask(...Object.values(spec.env ?? {}).filter((value) => value.length >= MIN_MASKED_LENGTH));
    const steps: StepReport[] = [];
    const data = () => ({ steps, exitCodes: steps.map((s) => s.exitCode), log: ctx.logger.counts() });
    // The step env as a nested field: masked values and all, it says what the steps were given.
    ctx.logger.info(`running ${spec.steps.length} step(s) of ${resource.name}`, {
      delivery: ctx.deliveryCount,
      ...(spec.env ? { env: spec.env } : {}),
    });
    for (const step of spec.steps) {
      ctx.logger.info(`step ${step.name}: starting`, { step: step.name });
      const report = await runStep(step, {
        env: spec.env,
        baseEnv: this.baseEnv,
        signal: ctx.signal,
        // However the run ends (cancelled, timed out, shutdown), nothing of the step outlives it.
        onSpawn: (killGroup) => ctx.onCleanup(killGroup),
        output: {
          stdout: ctx.logger.stream({ fields: { step: step.name, stream: 'stdout' } }),
          stderr: ctx.logger.stream({ fields: { step: step.name, stream: 'stderr' } }),
        },
      });
      steps.push(report);
      ctx.progress({ done: steps.length, total: spec.steps.length }); // watch: RunControl.watchProgress(runId)
      ctx.logger.info(
        `step ${step.name}: exit ${report.exitCode ?? report.signal} in ${report.durationMs} ms`,
        { step: step.name },
      );
      if (report.exitCode !== 0) {
        return { success: false, message: `step "${step.name}" ${describeFailure(report)}`, data: data() };
      }
    }
    return { success: true, message: `${steps.length} step(s) passed`, data: data() };
  }
}
