/** One shell step of a `pipeline` resource. */
export interface StepSpec {
  name: string;
  /** Run with `/bin/sh -c`. */
  run: string;
  /** Kill the step (and everything it started) after this many seconds. */
  timeoutSeconds?: number;
}

/** `spec` of the reference driver's `pipeline` resource. */
export interface PipelineSpec {
  steps: StepSpec[];
  /** Extra environment for every step. */
  env?: Record<string, string>;
}

/** Thrown for a spec the driver cannot run; its message becomes the failure result. */
export class InvalidPipelineSpecError extends Error {
  constructor(problem: string) {
    super(`invalid pipeline spec: ${problem}`);
    this.name = 'InvalidPipelineSpecError';
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Validates an untrusted `spec` into a {@link PipelineSpec}. @throws InvalidPipelineSpecError naming the first problem. */
export function parsePipelineSpec(spec: unknown): PipelineSpec {
  if (typeof spec !== 'object' || spec === null)
    throw new InvalidPipelineSpecError('spec must be an object with "steps"');
  const { steps, env } = spec as { steps?: unknown; env?: unknown };
  if (!Array.isArray(steps) || steps.length === 0)
    throw new InvalidPipelineSpecError('"steps" must be a non-empty array');
  const parsed = steps.map((step, i): StepSpec => {
    const where = `steps[${i}]`;
    if (typeof step !== 'object' || step === null)
      throw new InvalidPipelineSpecError(`${where} must be an object`);
    const { name, run, timeoutSeconds } = step as Record<string, unknown>;
    if (typeof name !== 'string' || !name.trim())
      throw new InvalidPipelineSpecError(`${where}.name must be a non-empty string`);
    if (typeof run !== 'string' || !run.trim())
      throw new InvalidPipelineSpecError(`${where}.run must be a non-empty string`);
    if (
      timeoutSeconds !== undefined &&
      (typeof timeoutSeconds !== 'number' || !(timeoutSeconds > 0) || timeoutSeconds > 86_400)
    ) {
      throw new InvalidPipelineSpecError(`${where}.timeoutSeconds must be a number of seconds in (0, 86400]`);
    }
    return { name, run, ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}) };
  });
  if (env === undefined || env === null) return { steps: parsed };
  if (typeof env !== 'object' || Array.isArray(env))
    throw new InvalidPipelineSpecError('"env" must be an object of strings');
  for (const [key, value] of Object.entries(env)) {
    if (!ENV_NAME.test(key))
      throw new InvalidPipelineSpecError(`env name ${JSON.stringify(key)} is not a valid variable name`);
    if (typeof value !== 'string') throw new InvalidPipelineSpecError(`env ${key} must be a string`);
  }
  return { steps: parsed, env: env as Record<string, string> };
}
