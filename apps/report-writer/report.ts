import type { DriverResultEvent, Resource, ResourceDefinition } from '@conveyor-ci/nestjs';
import type { ReportResource, ReportSpec } from './generated';

/** The resource type report-writer creates. */
export const REPORT_TYPE = 'report';

/**
 * The `report` resource definition, applied (create or replace) before the first report. Its
 * types and validator (`./generated`) are generated from it: after a change, run
 * `conveyor-nestjs generate --resource report --out apps/report-writer/generated` against an API
 * that has it (docs/typed-resources.md).
 */
export const REPORT_DEFINITION: ResourceDefinition = {
  name: REPORT_TYPE,
  version: '0.0.2',
  description: 'What a pipeline step reported, written by the report-writer example driver',
  schema: {
    type: 'object',
    properties: {
      source: {
        type: 'object',
        description: 'The resource the run was about, and the driver whose result this reports',
        properties: {
          resource: { type: 'string' },
          name: { type: 'string' },
          pipeline: { type: 'string' },
          driver: { type: 'string' },
        },
        required: ['resource', 'name', 'pipeline', 'driver'],
      },
      runId: { type: 'string' },
      success: { type: 'boolean' },
      summary: { type: 'string' },
      steps: {
        type: 'array',
        description: "The shell runner's steps (name, exit code, duration), when its result has them",
        items: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            exitCode: { type: ['integer', 'null'] },
            durationMs: { type: 'number' },
          },
          required: ['name', 'exitCode', 'durationMs'],
        },
      },
    },
    required: ['source', 'runId', 'success', 'summary', 'steps'],
  },
};

/** The report of `result` (the source driver's, read from `resource`), as a resource to create. */
export function buildReport(resource: Resource, result: DriverResultEvent, runId: string): ReportResource {
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
