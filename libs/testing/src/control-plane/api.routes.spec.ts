import { buildApp, useApiRoutes } from './api-routes.spec-support';

describe('Conveyor API routes (contract §10.1): routing, health, broadcast', () => {
  const { t, call, post, expectError, defineFlutterBuilder } = useApiRoutes();

  describe('GET / and GET /health', () => {
    it('GET / answers the banner as plain text', async () => {
      const res = await call('GET', '/');
      expect(res.status).toBe(200);
      expect(res.type).toBe('text/plain; charset=utf-8');
      expect(res.text).toBe('CONVEYOR API SERVER. Visit https://conveyor.open.ug for Documentation');
    });

    it('GET /health answers {"status":"healthy","time":<unix seconds>}', async () => {
      const before = Math.floor(Date.now() / 1000);
      const res = await call('GET', '/health');
      expect(res.status).toBe(200);
      expect(res.type).toBe('application/json');
      expect(res.text).toMatch(/^\{"status":"healthy","time":\d+\}$/);
      expect(res.json.time).toBeGreaterThanOrEqual(before);
      expect(res.json.time).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    });

    it('answers HEAD on a GET route (Fiber registers both), without a body', async () => {
      const res = await call('HEAD', '/health');
      expect(res.status).toBe(200);
      expect(res.text).toBe('');
    });
  });

  describe('Fiber routing', () => {
    it('answers an unrouted path with Fiber 404 text, path raw and HTML-escaped, without the query', async () => {
      const res = await call('GET', "/nope/%3Cx%3E/a&b'c?a=1");
      expect(t.handled).toBe(false);
      expect(res.status).toBe(404);
      expect(res.type).toBe('text/plain; charset=utf-8');
      expect(res.text).toBe('Cannot GET /nope/%3Cx%3E/a&amp;b&#39;c');
    });

    it('leaves /logs and /metrics to the other routes', async () => {
      await call('GET', '/logs');
      expect(t.handled).toBe(false);
      await call('POST', '/logs', { json: {} });
      expect(t.handled).toBe(false);
      await call('GET', '/metrics');
      expect(t.handled).toBe(false);
    });

    it('answers 405 with Allow when the path is routed for other methods only', async () => {
      const res = await call('POST', '/resources/flutter-builder/build-app');
      expect(res.status).toBe(405);
      expect(res.type).toBe('text/plain; charset=utf-8');
      expect(res.allow).toBe('GET, HEAD, PUT, DELETE');
      expect(res.text).toBe('Method Not Allowed');
      expect((await call('PATCH', '/resource-definitions/apply')).allow).toBe('GET, HEAD, POST, PUT, DELETE');
      expect((await call('GET', '/pipelines/')).allow).toBe('POST');
      expect((await call('DELETE', '/')).allow).toBe('GET, HEAD');
    });

    it('answers 400 "Invalid http method" to a method Fiber does not know', async () => {
      const res = await call('PROPFIND', '/resources/');
      expect(res.status).toBe(400);
      expect(res.text).toBe('Invalid http method');
    });

    it('is not strict about trailing slashes and matches static parts case-insensitively', async () => {
      await defineFlutterBuilder();
      expect((await post('/resources', buildApp)).status).toBe(201);
      expect((await call('GET', '/resources/flutter-builder/build-app/')).status).toBe(200);
      expect((await call('GET', '/Resource-Definitions/flutter-builder')).status).toBe(200);
      expect((await call('GET', '/health/')).status).toBe(200);
    });

    it('keeps params as written: case and percent-escapes (Fiber does not unescape paths)', async () => {
      await defineFlutterBuilder();
      await post('/resources/', { ...buildApp, name: 'a b' });
      expectError(
        await call('GET', '/RESOURCES/Flutter-Builder/a%20b'),
        500,
        'Failed to find resource: resource with name a%20b and type Flutter-Builder not found',
      );
    });

    it('does not route GET /resources/:type (Swagger documents it)', async () => {
      const res = await call('GET', '/resources/flutter-builder');
      expect(res.status).toBe(404);
      expect(res.text).toBe('Cannot GET /resources/flutter-builder');
    });
  });

  describe('POST /drivers/broadcast-message', () => {
    it('answers 200, stores the message with a new id and publishes it on core `application`', async () => {
      const res = await post('/drivers/broadcast-message', {
        event: 'hello',
        payload: '{}',
        id: 'x',
        run_id: 'r',
      });
      expect(res.status).toBe(200);
      expect(res.text).toBe('{"message":"message published"}');
      expect(t.core).toHaveLength(1);
      expect(t.core[0].subject).toBe('application');
      const id = JSON.parse(t.core[0].data).id as string;
      expect(id).toMatch(/^[0-9a-f]{24}$/);
      expect(t.core[0].data).toBe(`{"event":"hello","payload":"{}","id":"${id}","run_id":"r"}`);
      expect(t.store.driverMessages.get(id)).toEqual({ event: 'hello', payload: '{}', id, run_id: 'r' });
    });

    it('answers 400 could not parse request body (no JSON Content-Type, or a payload object)', async () => {
      expectError(
        await call('POST', '/drivers/broadcast-message', { body: '{}' }),
        400,
        'could not parse request body',
      );
      expectError(
        await post('/drivers/broadcast-message', { event: 'e', payload: { a: 1 } }),
        400,
        'could not parse request body',
      );
      expect(t.core).toEqual([]);
    });
  });
});
