import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ts from 'typescript';
import type { ResourceDefinition } from '../protocol';
import type { SpecValidator } from '../resources/spec-validator';
import { loadGenerated } from './generated-code.spec-support';
import { generateTypedResources } from './typed-resources.generator';

/** A definition using most of what schemas of resource definitions use, and keys the server ignores. */
const WIDGET: ResourceDefinition = {
  name: 'widget-spec',
  version: '1.2.0',
  description: 'A widget',
  schema: {
    type: 'object',
    description: 'What a widget is',
    'x-owner': 'team-a', // not a keyword: ignored, as the server ignores it
    pipeline: { steps: [] }, // the docs' non-keyword (contract §3.2)
    required: ['name', 'parts'],
    properties: {
      name: { type: 'string', minLength: 2, description: 'Shown in the UI' },
      email: { type: 'string', format: 'email' }, // an annotation in 2020-12: never asserted
      mode: { enum: ['fast', 'safe'] },
      size: { type: ['integer', 'null'], minimum: 1 },
      parts: { type: 'array', minItems: 1, items: { $ref: '#/$defs/part' } },
      tags: { type: 'array', uniqueItems: true, items: { type: 'string' } },
      labels: { type: 'object', additionalProperties: { type: 'string' } },
      pair: { prefixItems: [{ type: 'string' }, { type: 'number' }], items: false },
      either: { oneOf: [{ type: 'string' }, { type: 'object', properties: { id: { type: 'number' } } }] },
    },
    $defs: {
      part: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        properties: { id: { type: 'string', pattern: '^[a-z]+$' }, count: { type: 'number' } },
      },
    },
  },
};

const LEGACY: ResourceDefinition = {
  name: 'legacy',
  version: '1',
  schema: {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: { list: { type: 'array', items: [{ type: 'string' }], additionalItems: false } },
  },
};

/** `value` with every object's keys in reverse order: what the server's sorting undoes. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .reverse()
      .map((k) => [k, reversed((value as Record<string, unknown>)[k])]),
  );
}

/** Writes `files` to a fresh directory under the repository (so the library's path mapping applies). */
function writeFiles(files: Map<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'typed-resources-'));
  for (const [name, content] of files) writeFileSync(join(dir, name), content);
  return dir;
}

/** The generated files' diagnostics under `strict` (and the stricter checks a driver repo may use). */
function diagnostics(dir: string, files: Map<string, string>): string[] {
  const root = resolve(__dirname, '..');
  const program = ts.createProgram(
    [...files.keys()].map((name) => join(dir, name)),
    {
      strict: true,
      noUnusedLocals: true,
      noImplicitReturns: true,
      noFallthroughCasesInSwitch: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      experimentalDecorators: true,
      skipLibCheck: true,
      noEmit: true,
      types: ['node'],
      baseUrl: root,
      paths: { '@conveyor-ci/nestjs': [join(root, 'index.ts')] },
    },
  );
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName.startsWith(dir))
    .map(
      (d) => `${d.file!.fileName.slice(dir.length)}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
    );
}

describe('conveyor-nestjs generate: the generated files', () => {
  const files = generateTypedResources([WIDGET, LEGACY]);
  let dir: string;
  let validators: Record<string, SpecValidator>;

  beforeAll(() => {
    dir = writeFiles(files);
    validators = loadGenerated(files);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one file per definition, the shared helpers and an index', () => {
    expect([...files.keys()]).toEqual(['legacy.ts', 'widget-spec.ts', 'spec-runtime.ts', 'index.ts']);
  });

  it("does not depend on key order or definition order (the server sorts a schema's keys)", () => {
    const again = generateTypedResources([reversed(LEGACY), reversed(WIDGET)] as ResourceDefinition[]);
    expect(again).toEqual(files);
  });

  it('types each spec as its schema describes it', () => {
    const widget = files.get('widget-spec.ts')!;
    expect(widget).toContain('/** What a widget is */\nexport interface WidgetSpecSpec {');
    expect(widget).toContain('  /** Shown in the UI */\n  name: string;');
    expect(widget).toContain('  mode?: "fast" | "safe";');
    expect(widget).toContain('  size?: number | null;');
    expect(widget).toContain('  parts: WidgetSpecSpecPart[];');
    expect(widget).toContain('  labels?: {\n    [key: string]: string;\n  };');
    expect(widget).toContain('  pair?: [string?, number?];');
    expect(widget).toContain('export interface WidgetSpecSpecPart {\n  count?: number;\n  id: string;\n}');
    expect(widget).toContain('export type WidgetSpecResource = Resource<WidgetSpecSpec>;');
    expect(widget).toMatch(/version: "1\.2\.0",\n {2}schemaHash: "[0-9a-f]{16}",/);
  });

  it('carries nothing of ajv: no require, no schema compiled at run time', () => {
    for (const [name, content] of files) {
      expect([name, content]).not.toEqual([name, expect.stringMatching(/require\(|from 'ajv|new Function/)]);
    }
  });

  it('compiles under strict (with noUnusedLocals and noImplicitReturns)', () => {
    expect(diagnostics(dir, files)).toEqual([]);
  });

  it('accepts a valid spec, unknown keywords and formats ignored as the server does', () => {
    const { WidgetSpecSpecValidator: v } = validators;
    const spec = {
      name: 'ab',
      email: 'not an email',
      parts: [{ id: 'x' }],
      pair: ['a', 1],
      either: { id: 1 },
    };
    expect(v.check(spec)).toBeUndefined();
    expect(v.is(spec)).toBe(true);
    expect(v.check({ name: 'ab', parts: [{ id: 'a' }], tags: ['a', 'b'], pipeline: 1 })).toBeUndefined();
  });

  it.each([
    [{ name: 'ab' }, { path: '', rule: 'required', schemaPath: '#/required' }],
    [
      { name: 'a', parts: [{ id: 'x' }] },
      { path: '/name', rule: 'minLength' },
    ],
    [
      { name: 'ab', parts: [] },
      { path: '/parts', rule: 'minItems' },
    ],
    [
      { name: 'ab', parts: [{ id: 'X' }] },
      { path: '/parts/0/id', rule: 'pattern' },
    ],
    [
      { name: 'ab', parts: [{ id: 'x', extra: 1 }] },
      { path: '/parts/0', rule: 'additionalProperties' },
    ],
    [
      { name: 'ab', parts: [{ id: 'x' }], tags: ['a', 'a'] },
      { path: '/tags', rule: 'uniqueItems' },
    ],
    [
      { name: 'ab', parts: [{ id: 'x' }], labels: { 'a/b': 1 } },
      { path: '/labels/a~1b', rule: 'type' },
    ],
    [
      { name: 'ab', parts: [{ id: 'x' }], size: 1.5 },
      { path: '/size', rule: 'type' },
    ],
    [
      { name: 'ab', parts: [{ id: 'x' }], pair: ['a', 1, 2] },
      { path: '/pair', rule: 'items' },
    ],
    ['nope', { path: '', rule: 'type' }],
  ])('names the path and the rule of %j', (spec, expected) => {
    const violation = validators.WidgetSpecSpecValidator.check(spec);
    expect(violation).toMatchObject(expected);
    expect(violation!.message).toEqual(expect.any(String));
    expect(validators.WidgetSpecSpecValidator.is(spec)).toBe(false);
  });

  it('follows $schema: draft-07 tuples (items array, additionalItems)', () => {
    const { LegacySpecValidator: v } = validators;
    expect(files.get('legacy.ts')).toContain('list?: [string?];');
    expect(v.check({ list: ['a'] })).toBeUndefined();
    expect(v.check({ list: ['a', 'b'] })).toMatchObject({ path: '/list', rule: 'additionalItems' });
  });

  it('refuses a schema the server could not compile, naming the definition', () => {
    expect(() => generateTypedResources([{ name: 'broken', schema: { type: 5 } }])).toThrow(/"broken"/);
    expect(() =>
      generateTypedResources([{ name: 'odd', schema: { $schema: 'https://example.com/s' } }]),
    ).toThrow(/"odd": unsupported \$schema/);
  });
});
