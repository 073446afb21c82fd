import type { PipelineSpec } from '../generated';

// The spec's shape is the `pipeline` definition's, generated into ../generated
// (`conveyor-nestjs generate`): its validator runs before the handler (`@Reconcile({ spec })`), so
// only the rules the driver adds to the schema are checked here.
export type { PipelineSpec };

/** One shell step of a `pipeline` resource: `run` with `/bin/sh -c`, killed after `timeoutSeconds`. */
export type StepSpec = PipelineSpec['steps'][number];

/** Thrown for a spec the driver cannot run; its message becomes the failure result. */
export class InvalidPipelineSpecError extends Error {
  constructor(problem: string) {
    super(`invalid pipeline spec: ${problem}`);
    this.name = 'InvalidPipelineSpecError';
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A step may not ask for more than a day. */
const MAX_TIMEOUT_SECONDS = 86_400;

/**
 * The driver's own rules for a spec that already matches the definition's schema: at least one
 * step, names and commands that are not blank, a timeout in (0, 86400] seconds, environment names
 * a shell accepts. The schema allows more than a shell can run; a server-side definition is shared
 * with other tools, so these stay here rather than in it.
 * @returns the steps with only the fields the driver reads.
 * @throws InvalidPipelineSpecError naming the first problem.
 */
export function checkPipelineSpec(spec: PipelineSpec): PipelineSpec {
  if (spec.steps.length === 0) throw new InvalidPipelineSpecError('"steps" must be a non-empty array');
  const steps = spec.steps.map(({ name, run, timeoutSeconds }, i): StepSpec => {
    const where = `steps[${i}]`;
    if (!name.trim()) throw new InvalidPipelineSpecError(`${where}.name must be a non-empty string`);
    if (!run.trim()) throw new InvalidPipelineSpecError(`${where}.run must be a non-empty string`);
    if (timeoutSeconds !== undefined && !(timeoutSeconds > 0 && timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
      throw new InvalidPipelineSpecError(
        `${where}.timeoutSeconds must be a number of seconds in (0, ${MAX_TIMEOUT_SECONDS}]`,
      );
    }
    return { name, run, ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}) };
  });
  if (!spec.env) return { steps };
  for (const key of Object.keys(spec.env)) {
    if (!ENV_NAME.test(key))
      throw new InvalidPipelineSpecError(`env name ${JSON.stringify(key)} is not a valid variable name`);
  }
  return { steps, env: spec.env };
}
