import type { DriverResultEvent, Resource, ResourceDefinition } from '@conveyor-ci/nestjs';

/** The resource type report-writer creates. */
export const REPORT_TYPE = 'report';

/** The `report` resource definition, applied (create or replace) before the first report. */
export const REPORT_DEFINITION: ResourceDefinition = {
  name: REPORT_TYPE,
  version: '0.0.1',
  description: 'What a pipeline step reported, written by the report-writer example driver',
  schema: {
    type: 'object',
    properties: {
      source: { type: 'object' },
      runId: { type: 'string' },
      success: { type: 'boolean' },
      summary: { type: 'string' },
      steps: { type: 'array' },
    },
    required: ['source', 'runId', 'success', 'summary'],
  },
};

/** `spec` of a report. */
export interface ReportSpec {
  /** The resource the run was about, and the driver whose result this reports. */
  source: { resource: string; name: string; pipeline: string; driver: string };
  runId: string;
  success: boolean;
  summary: string;
  /** The shell runner's steps (name, exit code, duration), when its result has them. */
  steps: { name: string; exitCode: number | null; durationMs: number }[];
}

/** The report of `result` (the source driver's, read from `resource`), as a resource to create. */
export function buildReport(
  resource: Resource,
  result: DriverResultEvent,
  runId: string,
): Resource<ReportSpec> {
  return {
    name: `${resource.name}-report`,
    resource: REPORT_TYPE,
    spec: {
      source: {
        resource: resource.resource,
        name: resource.name,
        pipeline: resource.pipeline ?? '',
        driver: result.driver,
      },
      runId,
      success: result.success,
      summary: `${result.driver}: ${result.success ? 'succeeded' : 'failed'}: ${result.message}`,
      steps: stepsOf(result.data),
    },
  };
}

/** The steps of a shell-runner result's `data`, tolerating any other shape (another driver's data). */
function stepsOf(data: unknown): ReportSpec['steps'] {
  const steps = (data as { steps?: unknown } | null)?.steps;
  if (!Array.isArray(steps)) return [];
  return steps
    .filter((step): step is Record<string, unknown> => typeof step === 'object' && step !== null)
    .map((step) => ({
      name: String(step.name ?? ''),
      exitCode: typeof step.exitCode === 'number' ? step.exitCode : null,
      durationMs: typeof step.durationMs === 'number' ? step.durationMs : 0,
    }));
}
