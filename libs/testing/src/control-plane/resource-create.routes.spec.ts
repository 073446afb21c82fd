import {
  RUN_ID,
  UUID,
  flutterBuilder,
  buildApp,
  flutterPipeline,
  useApiRoutes,
} from './api-routes.spec-support';

describe('Conveyor API: creating resources (contract §10.1)', () => {
  const { t, call, post, expectError, defineFlutterBuilder } = useApiRoutes();

  describe('POST /resources/', () => {
    beforeEach(defineFlutterBuilder);

    it('creates: 201 with name, runid, message and version; id new, metadata overwritten; publishes', async () => {
      const res = await post('/resources/', {
        ...buildApp,
        id: 'mine',
        metadata: { version: '9', owner: 'me' },
      });
      expect(res.status).toBe(201);
      expect(res.text).toBe(
        `{"message":"Resource created successfully","name":"build-app","runid":"${RUN_ID}","version":"1"}`,
      );
      const stored = t.store.getResource('flutter-builder', 'build-app')!;
      expect(stored.id).toMatch(UUID);
      expect(stored).toEqual({ ...buildApp, id: stored.id, metadata: { version: '1' } });
      expect(t.published).toEqual([stored]);
      expect(t.store.versions.get('flutter-builder/build-app/1')).toEqual(stored);
    });

    it('routes /resources without the slash too', async () => {
      expect((await post('/resources', buildApp)).status).toBe(201);
    });

    it('requires a JSON Content-Type (Fiber BodyParser): none or text/plain is 400', async () => {
      const body = JSON.stringify(buildApp);
      expectError(
        await call('POST', '/resources/', { body: new TextEncoder().encode(body) }),
        400,
        'Invalid request payload',
      );
      expectError(await call('POST', '/resources/', { body }), 400, 'Invalid request payload');
      expect(t.published).toEqual([]);
    });

    it('accepts any Content-Type ending in json, parameters and vendor +json included', async () => {
      const body = JSON.stringify(buildApp);
      expect(
        (await call('POST', '/resources/', { body, contentType: 'Application/JSON; charset=utf-8' })).status,
      ).toBe(201);
      const vendor = { ...buildApp, name: 'two' };
      expect(
        (
          await call('POST', '/resources/', {
            body: JSON.stringify(vendor),
            contentType: 'application/vnd.x+json',
          })
        ).status,
      ).toBe(201);
    });

    it('answers 400 Invalid request payload to malformed JSON or fields of the wrong Go type', async () => {
      expectError(
        await call('POST', '/resources/', { body: '{"name":', contentType: 'application/json' }),
        400,
        'Invalid request payload',
      );
      expectError(await post('/resources/', [buildApp]), 400, 'Invalid request payload');
      expectError(await post('/resources/', { ...buildApp, name: 5 }), 400, 'Invalid request payload');
    });

    it('answers 400 Invalid request payload to metadata with non-string values, before any other check', async () => {
      expectError(
        await post('/resources/', { ...buildApp, resource: '', metadata: { retries: 3 } }),
        400,
        'Invalid request payload',
      );
    });

    it('decodes keys case-insensitively and ignores unknown ones, like Go', async () => {
      const res = await post('/resources/', {
        NAME: 'build-app',
        Resource: 'flutter-builder',
        spec: buildApp.spec,
        extra: 1,
      });
      expect(res.status).toBe(201);
      expect(t.store.getResource('flutter-builder', 'build-app')?.name).toBe('build-app');
    });

    it('answers 400 Resource type is required', async () => {
      expectError(await post('/resources/', { name: 'x', spec: {} }), 400, 'Resource type is required');
      expectError(await post('/resources/', null), 400, 'Resource type is required');
    });

    it('answers 500 (not 404) to an unknown type', async () => {
      expectError(
        await post('/resources/', { ...buildApp, resource: 'nope' }),
        500,
        'Failed to find resource definition: resource definition with name nope not found',
      );
    });

    it('answers 400 when the definition has no schema, before validating or looking up the pipeline', async () => {
      await post('/resource-definitions/', { name: 'bare' });
      expectError(
        await post('/resources/', { name: 'x', resource: 'bare', pipeline: 'nope', spec: 1 }),
        400,
        'Resource definition schema is required',
      );
    });

    it('answers 400 Resource validation failed: validation failed: <reason> to a spec the schema rejects', async () => {
      const res = await post('/resources/', { ...buildApp, spec: { repository: 'r', env: 'x' } });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatch(
        /^Resource validation failed: validation failed: jsonschema: '\/env' does not validate with file:\/\/.*\/inline-schema#\/properties\/env\/type: expected array, but got string$/,
      );
      const missing = await post('/resources/', { ...buildApp, spec: { env: [] } });
      expect(missing.json.error).toMatch(
        /^Resource validation failed: validation failed: jsonschema: '' .*repository/,
      );
      expect(t.published).toEqual([]);
      expect(t.store.resources.size).toBe(0);
    });

    it('validates only spec, and a missing spec as null', async () => {
      const res = await post('/resources/', { name: 'x', resource: 'flutter-builder' });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatch(
        /^Resource validation failed: validation failed: .*#\/type: expected object, but got null$/,
      );
    });

    it('answers 400 Resource validation failed: failed to compile schema: … to an invalid schema', async () => {
      await post('/resource-definitions/', { name: 'broken', schema: { type: 5 } });
      const res = await post('/resources/', { name: 'x', resource: 'broken', spec: {} });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatch(
        /^Resource validation failed: failed to compile schema: jsonschema file:\/\/.*\/inline-schema compilation failed: /,
      );
    });

    it('accepts the docs example schema with its non-schema top-level key `pipeline` (§3.2, §13.3)', async () => {
      const withPipelineKey = {
        ...flutterBuilder,
        name: 'flutter-docs',
        schema: {
          ...flutterBuilder.schema,
          pipeline: { type: 'object', properties: { name: { type: 'string' } } },
        },
      };
      expect((await post('/resource-definitions/', withPipelineKey)).status).toBe(201);
      expect((await post('/resources/', { ...buildApp, resource: 'flutter-docs' })).status).toBe(201);
      const invalid = await post('/resources/', {
        ...buildApp,
        name: 'bad',
        resource: 'flutter-docs',
        spec: { env: [] },
      });
      expect(invalid.status).toBe(400);
      // The concepts page's "workflow" schema has nothing but `pipeline`: it validates nothing.
      const workflow = {
        name: 'workflow',
        version: '0.0.1',
        schema: {
          pipeline: {
            type: 'object',
            properties: { name: { type: 'string' }, stages: { type: 'array', items: { type: 'string' } } },
            required: ['name', 'stages'],
          },
        },
      };
      expect((await post('/resource-definitions/', workflow)).status).toBe(201);
      expect(
        (await post('/resources/', { name: 'w', resource: 'workflow', spec: { pipeline: 5 } })).status,
      ).toBe(201);
    });

    it('honours $schema: draft-07 tuples with `items` arrays, 2020-12 (the default) with `prefixItems`', async () => {
      await post('/resource-definitions/', {
        name: 'd7',
        schema: { $schema: 'http://json-schema.org/draft-07/schema#', items: [{ type: 'string' }] },
      });
      expect((await post('/resources/', { name: 'a', resource: 'd7', spec: [1] })).status).toBe(400);
      await post('/resource-definitions/', { name: 'd2020', schema: { prefixItems: [{ type: 'string' }] } });
      expect((await post('/resources/', { name: 'a', resource: 'd2020', spec: [1] })).status).toBe(400);
      expect((await post('/resources/', { name: 'b', resource: 'd2020', spec: ['x'] })).status).toBe(201);
    });

    it('answers 500 (not 400) to an unknown pipeline, after validation', async () => {
      expectError(
        await post('/resources/', { ...buildApp, pipeline: 'nope' }),
        500,
        'Failed to get pipeline: pipeline not found',
      );
      const invalid = await post('/resources/', { ...buildApp, pipeline: 'nope', spec: {} });
      expect(invalid.json.error).toMatch(/^Resource validation failed/);
    });

    it('answers 400 when the pipeline is for another resource type', async () => {
      await post('/resource-definitions/', { name: 'other', schema: {} });
      await post('/pipelines/', { ...flutterPipeline, name: 'other-pipeline', resource: 'other' });
      expectError(
        await post('/resources/', { ...buildApp, pipeline: 'other-pipeline' }),
        400,
        'Resource type flutter-builder does not match pipeline resource type other',
      );
    });

    it('creates a resource with a pipeline and publishes it with its pipeline', async () => {
      await post('/pipelines/', flutterPipeline);
      const res = await post('/resources/', { ...buildApp, pipeline: 'flutter-pipeline' });
      expect(res.status).toBe(201);
      expect(res.json.runid).toBe(RUN_ID);
      expect(t.published).toHaveLength(1);
      expect(t.published[0]).toMatchObject({ name: 'build-app', pipeline: 'flutter-pipeline' });
    });

    it('answers 500 (not 409) to a duplicate, and publishes nothing for it', async () => {
      await post('/resources/', buildApp);
      expectError(
        await post('/resources/', buildApp),
        500,
        'Failed to insert resource: resource with name build-app and type flutter-builder already exists',
      );
      expect(t.published).toHaveLength(1);
    });

    it('answers 500 when the publish fails, and keeps the resource: a retry is a duplicate', async () => {
      t.publish = () => Promise.reject(new Error('nats: timeout'));
      expectError(
        await post('/resources/', buildApp),
        500,
        'Failed to publish resource event: nats: timeout',
      );
      expect(t.store.getResource('flutter-builder', 'build-app')).toBeDefined();
      t.publish = async () => RUN_ID;
      expect((await post('/resources/', buildApp)).status).toBe(500);
    });

    it('stores spec and metadata as Go re-marshals them: map keys sorted, <>& escaped on output', async () => {
      await post('/resource-definitions/', { name: 'any', schema: true });
      await post('/resources/', { name: '<b&b>', resource: 'any', spec: { z: 1, a: { y: 2, b: 3 } } });
      const stored = t.store.getResource('any', '<b&b>')!;
      expect(JSON.stringify(stored.spec)).toBe('{"a":{"b":3,"y":2},"z":1}');
      const res = await call('GET', '/resources/any/%3Cb&b%3E');
      expect(res.status).toBe(500); // the param stays percent-encoded, so it is not found
      t.store.resources.set('any/x', stored);
      const got = await call('GET', '/resources/any/x');
      expect(got.text).toContain('"name":"\\u003cb\\u0026b\\u003e"');
    });
  });
});
