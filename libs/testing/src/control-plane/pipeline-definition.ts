import type { ResourceDefinition } from '@conveyor-ci/nestjs/internal';

/**
 * The resource definition of the reference driver (`shell-runner`): a `pipeline` resource's `spec`
 * is shell steps to run in order, with optional environment. A Conveyor server refuses a resource
 * of a type nobody defined (500 "resource definition with name pipeline not found"), so
 * `npm run conveyor:dev` and `npm run dev` apply this one first.
 */
export const PIPELINE_DEFINITION = {
  name: 'pipeline',
  version: '0.0.1',
  description: 'Shell steps run in order by the reference shell-runner driver',
  schema: {
    type: 'object',
    properties: {
      steps: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            run: { type: 'string' },
            timeoutSeconds: { type: 'number' },
          },
          required: ['name', 'run'],
        },
      },
      env: { type: 'object', additionalProperties: { type: 'string' } },
    },
    required: ['steps'],
  },
} satisfies ResourceDefinition;
