import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConveyorClient,
  DriverResult,
  Reconcile,
  ReconcileContext,
  type ResourceDefinition,
} from '@conveyor-ci/nestjs';
import {
  ConveyorControlPlane,
  ConveyorTestingModule,
  PIPELINE_DEFINITION,
  makeResource,
} from '@conveyor-ci/testing';
import { ConveyorStrategy } from '@conveyor-ci/nestjs/internal';
import { generateCommand } from '../../libs/conveyor/src/cli/generate.command';
import { loadGenerated } from '../../libs/conveyor/src/cli/generated-code.spec-support';
import { PipelineResource, PipelineSpec, PipelineSpecValidator } from '../../src/generated';
import { REPORT_DEFINITION } from '../../apps/report-writer/report';

/**
 * Issue 30: types and validators generated from the server's resource definitions, against the
 * local control plane (its `/resource-definitions` routes and the server's validation dialect).
 */
const ROOT = resolve(__dirname, '../..');
let plane: ConveyorControlPlane;
let client: ConveyorClient;
const dirs: string[] = [];

const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'typed-resources-'));
  dirs.push(dir);
  return dir;
};

/** Runs `conveyor-nestjs generate` in-process: its exit code and what it printed. */
async function generate(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await generateCommand(argv, { out: (l) => out.push(l), err: (l) => err.push(l) }, {});
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const filesOf = (dir: string): Record<string, string> =>
  Object.fromEntries(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name), 'utf8')]));

beforeAll(async () => {
  plane = await ConveyorControlPlane.start();
  client = new ConveyorClient({ apiUrl: plane.apiUrl });
  await client.createOrUpdateResourceDefinition(PIPELINE_DEFINITION);
  await client.createOrUpdateResourceDefinition(REPORT_DEFINITION);
});
afterAll(async () => {
  await plane.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('conveyor-nestjs generate', () => {
  it('gives the same files from the API and from JSON files (and they are the committed ones)', async () => {
    const fromApi = tempDir();
    const api = await generate(
      '--out',
      fromApi,
      '--api-url',
      plane.apiUrl,
      '--resource',
      'pipeline',
      '--resource',
      'report',
    );
    expect(api).toMatchObject({ code: 0, err: '' });
    const files = tempDir();
    writeFileSync(
      join(files, 'definitions.json'),
      JSON.stringify([PIPELINE_DEFINITION, REPORT_DEFINITION], null, 2),
    );
    const fromFiles = tempDir();
    expect((await generate('--out', fromFiles, '--from', join(files, 'definitions.json'))).code).toBe(0);
    // The server hands the schema back with its keys sorted; the files keep the author's order.
    expect(JSON.stringify(await client.getResourceDefinition('report'))).not.toContain(
      JSON.stringify(REPORT_DEFINITION.schema),
    );
    expect(filesOf(fromApi)).toEqual(filesOf(fromFiles));
    expect(Object.keys(filesOf(fromApi)).sort()).toEqual([
      'index.ts',
      'pipeline.ts',
      'report.ts',
      'spec-runtime.ts',
    ]);
    expect(filesOf(fromApi)).toMatchSnapshot();
    // The drivers' generated folders are what the server's definitions give today.
    for (const [out, name] of [
      ['src/generated', 'pipeline'],
      ['apps/report-writer/generated', 'report'],
    ]) {
      const check = await generate(
        '--check',
        '--out',
        join(ROOT, out),
        '--api-url',
        plane.apiUrl,
        '--resource',
        name,
      );
      expect(check).toMatchObject({ code: 0, err: '' });
    }
  });

  it('--check exits 1 and names the file once the definition changed on the server', async () => {
    const widget = { name: 'widget', version: '1', schema: { type: 'object', required: ['size'] } };
    await client.createOrUpdateResourceDefinition(widget);
    const out = tempDir();
    const args = ['--out', out, '--api-url', plane.apiUrl, '--resource', 'widget'];
    expect((await generate(...args)).code).toBe(0);
    expect(await generate('--check', ...args)).toMatchObject({ code: 0 });
    await client.createOrUpdateResourceDefinition({ ...widget, version: '2', schema: { type: 'object' } });
    const check = await generate('--check', ...args);
    expect(check.code).toBe(1);
    expect(check.err).toContain('widget.ts changed');
    expect(readFileSync(join(out, 'widget.ts'), 'utf8')).toContain('version: "1"'); // --check writes nothing
  });

  it("accepts and refuses the specs the server's validation does (its dialect)", async () => {
    const cases: { schema: Record<string, unknown>; specs: unknown[] }[] = [
      {
        // 2020-12 by default; an unknown keyword and `format` validate nothing.
        schema: {
          type: 'object',
          'x-team': 'ci',
          required: ['email'],
          properties: {
            email: { type: 'string', format: 'email' },
            tags: { prefixItems: [{ type: 'number' }] },
          },
        },
        specs: [
          { email: 'not-an-email' },
          {},
          { email: 1 },
          { email: 'a', tags: ['x'] },
          { email: 'a', tags: [1] },
        ],
      },
      {
        schema: {
          $schema: 'http://json-schema.org/draft-07/schema#',
          properties: { list: { items: [{ type: 'string' }], additionalItems: false } },
        },
        specs: [{ list: ['a'] }, { list: ['a', 'b'] }, { list: [1] }],
      },
      {
        schema: {
          $schema: 'https://json-schema.org/draft/2019-09/schema',
          properties: { n: { type: 'integer', minimum: 1 }, s: { minLength: 2 } },
          dependentRequired: { n: ['s'] },
        },
        specs: [{ n: 2, s: 'ab' }, { n: 2 }, { n: 0.5, s: 'ab' }, { s: '😀' }, { s: '😀😀' }],
      },
    ];
    for (const [i, { schema, specs }] of cases.entries()) {
      const name = `dialect-${i}`;
      await client.createOrUpdateResourceDefinition({ name, version: '1', schema });
      const out = tempDir();
      expect((await generate('--out', out, '--api-url', plane.apiUrl, '--resource', name)).code).toBe(0);
      const files = new Map(Object.entries(filesOf(out)));
      const validator = Object.values(loadGenerated(files))[0];
      for (const [j, spec] of specs.entries()) {
        const created = await fetch(`${plane.apiUrl}/resources`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: `${name}-${j}`, resource: name, spec }),
        });
        expect({ schema, spec, serverAccepts: created.status === 201 }).toEqual({
          schema,
          spec,
          serverAccepts: validator.check(spec) === undefined,
        });
      }
    }
  });

  it('fails (exit 2) for a definition the server does not have, naming it', async () => {
    const run = await generate('--out', tempDir(), '--api-url', plane.apiUrl, '--resource', 'nope');
    expect(run.code).toBe(2);
    expect(run.err).toContain('"nope"');
  });
});

/** What the typed handler received. */
const received: PipelineSpec[] = [];

@Controller()
class TypedDriver {
  @Reconcile({ resource: 'pipeline', spec: PipelineSpecValidator })
  run(@Payload() resource: PipelineResource, @Ctx() ctx: ReconcileContext): DriverResult {
    received.push(resource.spec);
    // Typed: no cast, no guard.
    const names = resource.spec.steps.map((step) => step.name);
    ctx.logger.info(`steps ${names.join(', ')}`);
    return { success: true, message: `${names.length} step(s)` };
  }
}

describe('@Reconcile({ spec }): the payload checked before a typed handler', () => {
  let testing: ConveyorTestingModule;
  const rejected: { resourceType: string; rule: string }[] = [];

  beforeAll(async () => {
    testing = await ConveyorTestingModule.create({
      controllers: [TypedDriver],
      options: { driverName: 'typed', apiUrl: plane.apiUrl, resourceDrift: 'refuse' },
    });
    testing.app.get(ConveyorStrategy).observe({ specRejected: (e) => rejected.push(e) });
  });
  afterAll(() => testing.close());

  it('a valid resource reaches the handler typed', async () => {
    const spec = { steps: [{ name: 'build', run: 'make' }] };
    const run = await testing.reconcile(makeResource({ name: 'ok', resource: 'pipeline', spec }));
    expect(run.result?.driverresult).toMatchObject({ success: true, message: '1 step(s)' });
    expect(received).toEqual([spec]);
  });

  it('a resource that violates its definition ends as a failure result naming the path and the rule', async () => {
    // Events published by other tools, or stored before the definition changed: the server did not
    // check this spec against today's definition.
    const spec = { steps: [{ name: 'build' }] };
    const run = await testing.reconcile(makeResource({ name: 'bad', resource: 'pipeline', spec }));
    expect(run.outcome.kind).toBe('invalid-spec');
    expect(run.settlement).toMatchObject({ kind: 'failed', action: 'ack' });
    expect(run.result?.driverresult).toMatchObject({
      success: false,
      message:
        'spec does not match resource definition "pipeline" (version 0.0.1): ' +
        `spec.steps[0] must have required property 'run' (rule "required" at #/properties/steps/items/required)`,
      data: { specViolation: { path: '/steps/0', rule: 'required' } },
    });
    expect(received).toHaveLength(1); // the handler never saw it
    expect(rejected).toEqual([{ resourceType: 'pipeline', rule: 'required' }]);
  });
});

describe('startup: generated definitions compared with the server', () => {
  /** A validator as if generated from an older or newer definition. */
  const drifted = (change: Partial<typeof PipelineSpecValidator>) => {
    @Controller()
    class DriftedDriver {
      @Reconcile({ resource: 'pipeline', spec: { ...PipelineSpecValidator, ...change } })
      run(): DriverResult {
        return { success: true };
      }
    }
    return DriftedDriver;
  };
  const start = (controller: ReturnType<typeof drifted>, options: Record<string, unknown>) =>
    ConveyorTestingModule.create({ controllers: [controller], options: { driverName: 'drift', ...options } });

  it('refuses to start when a definition changed, saying which and how (resourceDrift: refuse)', async () => {
    await expect(
      start(drifted({ version: '0.0.0' }), { apiUrl: plane.apiUrl, resourceDrift: 'refuse' }),
    ).rejects.toThrow('"pipeline" is version 0.0.1 on the server, the code was generated from 0.0.0');
    await expect(
      start(drifted({ schemaHash: '0000000000000000' }), { apiUrl: plane.apiUrl, resourceDrift: 'refuse' }),
    ).rejects.toThrow('"pipeline" changed its schema on the server under the same version 0.0.1');
  });

  it('warns and starts by default; an API that does not answer is no reason to refuse', async () => {
    const warned = await start(drifted({ version: '0.0.0' }), { apiUrl: plane.apiUrl });
    await warned.close();
    const unreachable = await start(drifted({ version: '0.0.0' }), {
      apiUrl: 'http://127.0.0.1:9',
      resourceDrift: 'refuse',
    });
    await unreachable.close();
  });

  it('names a definition the server does not have', async () => {
    const definition: ResourceDefinition = { name: 'gone', version: '1', schema: {} };
    const validator = { ...PipelineSpecValidator, definition: definition.name };
    @Controller()
    class GoneDriver {
      @Reconcile({ resource: 'gone', spec: validator })
      run(): DriverResult {
        return { success: true };
      }
    }
    await expect(start(GoneDriver, { apiUrl: plane.apiUrl, resourceDrift: 'refuse' })).rejects.toThrow(
      '"gone" (generated from version 0.0.1) is not defined on the server',
    );
  });
});
