import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { useApiRoutes } from './api-routes.spec-support';

/**
 * The texts of santhosh-tekuri/jsonschema v5.3.1 (the server's validator, `internal/utils/validator.go`)
 * for the common keywords, as `POST /resources` wraps them: `Resource validation failed: validation
 * failed: jsonschema: '<instance>' does not validate with <file:///cwd/inline-schema>#<keyword path>:
 * <message>`. Messages from v5.3.1 `schema.go` / `compiler.go`.
 */
describe('spec validation error texts (santhosh-tekuri/jsonschema v5, contract §10.2a)', () => {
  const { post } = useApiRoutes();
  const location = pathToFileURL(resolve('inline-schema')).href;

  /** The error for `spec` against a definition with `schema`. */
  async function errorFor(schema: unknown, spec: unknown): Promise<string> {
    expect((await post('/resource-definitions/apply', { name: 'widget', schema })).status).toBe(201);
    const res = await post('/resources', { name: 'w', resource: 'widget', spec });
    expect(res.status).toBe(400);
    return res.json.error;
  }

  const failure = (instance: string, keyword: string, message: string) =>
    `Resource validation failed: validation failed: jsonschema: '${instance}' does not validate with ${location}#${keyword}: ${message}`;

  it('required: every missing property, quoted, in the schema order', async () => {
    expect(await errorFor({ type: 'object', required: ['steps', 'env', 'name'] }, { name: 'x' })).toBe(
      failure('', '/required', "missing properties: 'steps', 'env'"),
    );
  });

  it('type: "expected <types joined by or>, but got <JSON type>", numbers always "number"', async () => {
    expect(await errorFor({ type: 'object', properties: { steps: { type: 'array' } } }, { steps: 'x' })).toBe(
      failure('/steps', '/properties/steps/type', 'expected array, but got string'),
    );
  });

  it('type: a list of types, and an integer value', async () => {
    expect(await errorFor({ properties: { n: { type: ['string', 'null'] } } }, { n: 5 })).toBe(
      failure('/n', '/properties/n/type', 'expected string or null, but got number'),
    );
  });

  it('type: a failed type stops the other keywords of that schema', async () => {
    expect(await errorFor({ type: 'object', required: ['steps'], enum: [1] }, [])).toBe(
      failure('', '/type', 'expected object, but got array'),
    );
  });

  it('enum: Go %#v of each value (numbers are json.Number, so quoted)', async () => {
    expect(
      await errorFor({ properties: { mode: { enum: ['fast', 'safe', 1, true, null] } } }, { mode: 'x' }),
    ).toBe(
      failure('/mode', '/properties/mode/enum', 'value must be one of "fast", "safe", "1", true, <nil>'),
    );
    expect(await errorFor({ properties: { mode: { enum: ['only'] } } }, { mode: 'x' })).toBe(
      failure('/mode', '/properties/mode/enum', 'value must be "only"'),
    );
  });

  it('pattern: the pattern quoted', async () => {
    expect(await errorFor({ properties: { name: { pattern: '^[a-z]+$' } } }, { name: 'ABC' })).toBe(
      failure('/name', '/properties/name/pattern', "does not match pattern '^[a-z]+$'"),
    );
  });

  it('additionalProperties false: the extra property names', async () => {
    expect(
      await errorFor({ properties: { steps: {} }, additionalProperties: false }, { steps: [], extra: 1 }),
    ).toBe(failure('', '/additionalProperties', "additionalProperties 'extra' not allowed"));
  });

  it("reports the library's first error: required before a property's own error", async () => {
    const schema = {
      type: 'object',
      required: ['env'],
      properties: { steps: { type: 'array' } },
      additionalProperties: false,
    };
    expect(await errorFor(schema, { steps: 'x', extra: 1 })).toBe(
      failure('', '/required', "missing properties: 'env'"),
    );
    expect(await errorFor(schema, { env: 1, steps: 'x', extra: 1 })).toBe(
      failure('/steps', '/properties/steps/type', 'expected array, but got string'),
    );
  });

  it('reports a nested error at its instance and keyword path', async () => {
    const schema = {
      properties: { steps: { type: 'array', items: { type: 'object', required: ['run'] } } },
    };
    expect(await errorFor(schema, { steps: [{ run: 'a' }, { name: 'b' }] })).toBe(
      failure('/steps/1', '/properties/steps/items/required', "missing properties: 'run'"),
    );
  });
});
