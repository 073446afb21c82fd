import { buildApp, useApiRoutes } from './api-routes.spec-support';

describe('Conveyor API resource routes (contract §10.1)', () => {
  const { t, call, post, put, expectError, defineFlutterBuilder } = useApiRoutes();

  describe('GET /resources/', () => {
    it('never lists: 400 Resource type is required, with or without the slash', async () => {
      expectError(await call('GET', '/resources/'), 400, 'Resource type is required');
      expectError(await call('GET', '/resources'), 400, 'Resource type is required');
    });
  });

  describe('GET /resources/:type/:name', () => {
    it('answers the resource as the server marshals it', async () => {
      await defineFlutterBuilder();
      await post('/resources/', { ...buildApp, spec: { repository: 'r', env: [] } });
      const stored = t.store.getResource('flutter-builder', 'build-app')!;
      const res = await call('GET', '/resources/flutter-builder/build-app');
      expect(res.status).toBe(200);
      expect(res.text).toBe(
        `{"id":"${stored.id}","name":"build-app","resource":"flutter-builder","metadata":{"version":"1"},"spec":{"env":[],"repository":"r"}}`,
      );
    });

    it('answers 500 (not 404) when missing', async () => {
      expectError(
        await call('GET', '/resources/flutter-builder/nope'),
        500,
        'Failed to find resource: resource with name nope and type flutter-builder not found',
      );
    });
  });

  describe('PUT /resources/:type/:name', () => {
    beforeEach(async () => {
      await defineFlutterBuilder();
      await post('/resources/', buildApp);
      t.published = [];
    });

    it('keeps the id, increments the version, takes the other metadata from the body and publishes nothing', async () => {
      const created = t.store.getResource('flutter-builder', 'build-app')!;
      t.store.recordDriverResult('flutter-builder', 'build-app', {
        success: true,
        message: 'ok',
        data: null,
        driver: 'container-start',
      });
      const res = await put('/resources/flutter-builder/build-app', {
        ...buildApp,
        id: 'ignored',
        metadata: { version: '7', owner: 'me' },
        spec: { repository: 'r2', env: [] },
      });
      expect(res.status).toBe(200);
      const expected = {
        id: created.id,
        name: 'build-app',
        resource: 'flutter-builder',
        metadata: { owner: 'me', version: '2' }, // driverresults.container-start is gone (§17 G17)
        spec: { env: [], repository: 'r2' },
      };
      expect(res.json).toEqual(expected);
      expect(t.store.getResource('flutter-builder', 'build-app')).toEqual(expected);
      expect(t.store.versions.get('flutter-builder/build-app/1')).toEqual(created);
      expect(t.store.versions.get('flutter-builder/build-app/2')).toEqual(expected);
      expect(t.published).toEqual([]);
      const again = await put('/resources/flutter-builder/build-app', buildApp);
      expect(again.json.metadata).toEqual({ version: '3' });
    });

    it('does not reconcile the body name and type with the URL', async () => {
      const res = await put('/resources/flutter-builder/build-app', {
        ...buildApp,
        name: 'renamed',
        resource: 'x',
      });
      expect(res.status).toBe(200);
      expect(t.store.getResource('flutter-builder', 'build-app')).toMatchObject({
        name: 'renamed',
        resource: 'x',
      });
      expect(t.store.getResource('x', 'renamed')).toBeUndefined();
    });

    it('answers 500 with the doubled not-found text (and its trailing space) when missing', async () => {
      expectError(
        await put('/resources/flutter-builder/nope', buildApp),
        500,
        'Failed to update resource: resource with name nope and type flutter-builder not found: ' +
          'resource with name nope and type flutter-builder not found ',
      );
    });

    it('answers 500 when the URL type has no definition, checked before the resource', async () => {
      expectError(
        await put('/resources/nope/build-app', buildApp),
        500,
        'Failed to find resource definition: resource definition with name nope not found',
      );
    });

    it('answers 400 to an invalid payload or a spec the schema rejects', async () => {
      expectError(
        await call('PUT', '/resources/flutter-builder/build-app', { body: JSON.stringify(buildApp) }),
        400,
        'Invalid request payload',
      );
      const res = await put('/resources/flutter-builder/build-app', { ...buildApp, spec: {} });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatch(/^Resource validation failed: validation failed: /);
    });

    it('answers 500 when the stored version is not a number', async () => {
      t.store.resources.set('flutter-builder/odd', { name: 'odd', resource: 'flutter-builder', spec: {} });
      expectError(
        await put('/resources/flutter-builder/odd', buildApp),
        500,
        'Failed to update resource: failed to parse version: strconv.Atoi: parsing "": invalid syntax',
      );
    });
  });

  describe('DELETE /resources/:type/:name', () => {
    it('answers 204 whether or not the resource exists, keeps the versioned keys and publishes nothing', async () => {
      await defineFlutterBuilder();
      await post('/resources/', buildApp);
      t.published = [];
      const res = await call('DELETE', '/resources/flutter-builder/build-app');
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect(t.store.getResource('flutter-builder', 'build-app')).toBeUndefined();
      expect((await call('GET', '/resources/flutter-builder/build-app/1')).status).toBe(200);
      expect((await call('DELETE', '/resources/flutter-builder/build-app')).status).toBe(204);
      expect((await call('DELETE', '/resources/nope/nope')).status).toBe(204);
      expect(t.published).toEqual([]);
    });
  });

  describe('GET /resources/:type/:name/:version', () => {
    it('answers that version, or 500 when missing', async () => {
      await defineFlutterBuilder();
      await post('/resources/', buildApp);
      const res = await call('GET', '/resources/flutter-builder/build-app/1');
      expect(res.status).toBe(200);
      expect(res.json).toEqual(t.store.getResource('flutter-builder', 'build-app'));
      expectError(
        await call('GET', '/resources/flutter-builder/build-app/2'),
        500,
        'Failed to find resource: resource with name build-app, type flutter-builder and version 2 not found',
      );
    });
  });
});
