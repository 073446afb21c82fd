import { UUID, flutterBuilder, flutterPipeline, useApiRoutes } from './api-routes.spec-support';

describe('Conveyor API definition and pipeline routes (contract §10.1)', () => {
  const { t, call, post, put, expectError, defineFlutterBuilder } = useApiRoutes();

  describe('resource definitions', () => {
    it('POST /resource-definitions/ answers 201 with a new id and every Go field', async () => {
      const res = await post('/resource-definitions', { name: 'plain', id: 'mine' });
      expect(res.status).toBe(201);
      expect(res.json.id).toMatch(UUID);
      expect(res.text).toBe(
        `{"id":"${res.json.id}","name":"plain","description":"","version":"","schema":null}`,
      );
      expect(t.store.definitions.get('plain')).toEqual(res.json);
    });

    it('POST /resource-definitions/ answers 500 to a duplicate and 400 to an invalid payload', async () => {
      await defineFlutterBuilder();
      expectError(
        await post('/resource-definitions/', flutterBuilder),
        500,
        'Failed to insert resource definition: resource definition with name flutter-builder already exists',
      );
      expectError(
        await call('POST', '/resource-definitions/', { body: JSON.stringify(flutterBuilder) }),
        400,
        'Invalid request payload',
      );
    });

    it('POST /resource-definitions/apply creates: 201 with a new id that is not persisted', async () => {
      const res = await post('/resource-definitions/apply', flutterBuilder);
      expect(res.status).toBe(201);
      expect(res.json.id).toMatch(UUID);
      expect(res.json).toMatchObject({ ...flutterBuilder, description: '' });
      expect(t.store.definitions.get('flutter-builder')?.id).toBe('');
      expect((await call('GET', '/resource-definitions/flutter-builder')).json.id).toBe('');
    });

    it('POST /resource-definitions/apply updates: 201 echo, the stored document replaced so the old id is lost', async () => {
      await defineFlutterBuilder();
      const changed = { ...flutterBuilder, version: '0.0.2' };
      const res = await post('/resource-definitions/apply', changed);
      expect(res.status).toBe(201);
      expect(res.json).toEqual({ ...changed, id: '', description: '' });
      expect(t.store.definitions.get('flutter-builder')).toEqual({ ...changed, id: '', description: '' });
    });

    it('POST /resource-definitions/apply answers 400 without a name or with an invalid payload', async () => {
      expectError(
        await post('/resource-definitions/apply', { schema: {} }),
        400,
        'Resource name is required',
      );
      expectError(
        await call('POST', '/resource-definitions/apply', { body: '{}', contentType: 'text/plain' }),
        400,
        'Invalid request payload',
      );
    });

    it('GET /resource-definitions/:name answers 200, or 500 when missing', async () => {
      await defineFlutterBuilder();
      const res = await call('GET', '/resource-definitions/flutter-builder');
      expect(res.status).toBe(200);
      expect(res.json).toEqual(t.store.definitions.get('flutter-builder'));
      expectError(
        await call('GET', '/resource-definitions/nope'),
        500,
        'Failed to find resource definition: resource definition with name nope not found',
      );
    });

    it('PUT /resource-definitions/:name answers 200 echo, stored under the URL name; 500 when missing', async () => {
      await defineFlutterBuilder();
      const res = await put('/resource-definitions/flutter-builder', { name: 'other', schema: {} });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ id: '', name: 'other', description: '', version: '', schema: {} });
      expect(t.store.definitions.get('flutter-builder')).toEqual(res.json);
      expectError(
        await put('/resource-definitions/nope', flutterBuilder),
        500,
        'Failed to update resource definition: resource definition with name nope not found',
      );
      expectError(
        await call('PUT', '/resource-definitions/flutter-builder', { body: '{}' }),
        400,
        'Invalid request payload',
      );
    });

    it('DELETE /resource-definitions/:name answers 204, or 500 when missing', async () => {
      await defineFlutterBuilder();
      const res = await call('DELETE', '/resource-definitions/flutter-builder');
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect(t.store.definitions.has('flutter-builder')).toBe(false);
      expectError(
        await call('DELETE', '/resource-definitions/flutter-builder'),
        500,
        'Failed to delete resource definition: resource definition with name flutter-builder not found',
      );
    });
  });

  describe('pipelines', () => {
    beforeEach(defineFlutterBuilder);

    it('POST /pipelines/ answers 201 with the pipeline as Go marshals it', async () => {
      const res = await post('/pipelines/', flutterPipeline);
      expect(res.status).toBe(201);
      expect(res.json).toEqual({ ...flutterPipeline, version: '', metadata: null });
      expect(t.store.pipelines.get('flutter-pipeline')).toEqual({ ...flutterPipeline, version: '' });
      expect((await post('/pipelines', { ...flutterPipeline, name: 'no-slash' })).status).toBe(201);
    });

    it('POST /pipelines/ echoes absent steps and metadata as null, and stores them as [] and absent', async () => {
      const res = await post('/pipelines/', { name: 'empty', resource: 'flutter-builder' });
      expect(res.status).toBe(201);
      expect(res.text).toBe(
        '{"name":"empty","description":"","version":"","resource":"flutter-builder","steps":null,"metadata":null}',
      );
      expect(t.store.pipelines.get('empty')).toEqual({
        name: 'empty',
        description: '',
        version: '',
        resource: 'flutter-builder',
        steps: [],
      });
    });

    it('POST /pipelines/ upserts an existing pipeline', async () => {
      await post('/pipelines/', flutterPipeline);
      const res = await post('/pipelines/', { ...flutterPipeline, steps: [{ driver: 'builder' }] });
      expect(res.status).toBe(201);
      expect(t.store.pipelines.get('flutter-pipeline')?.steps).toEqual([
        { id: '', name: '', driver: 'builder' },
      ]);
    });

    it('POST /pipelines/ answers 500 to an unknown resource type and 400 to an invalid payload', async () => {
      expectError(
        await post('/pipelines/', { ...flutterPipeline, resource: 'nope' }),
        500,
        'Failed to find resource definition: resource definition with name nope not found',
      );
      expectError(
        await post('/pipelines/', { ...flutterPipeline, steps: {} }),
        400,
        'Invalid request payload',
      );
      expect(t.store.pipelines.size).toBe(0);
    });

    it.each(['GET', 'PUT', 'DELETE'])('%s /pipelines/:name is not routed: Fiber 404', async (method) => {
      await post('/pipelines/', flutterPipeline);
      const res = await call(method, '/pipelines/flutter-pipeline');
      expect(res.status).toBe(404);
      expect(res.type).toBe('text/plain; charset=utf-8');
      expect(res.text).toBe(`Cannot ${method} /pipelines/flutter-pipeline`);
    });
  });
});
