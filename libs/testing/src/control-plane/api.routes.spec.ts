import { Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from '@conveyor-ci/nestjs/internal';
import { ApiDeps, fiberNotFound, handleApiRoute } from './api.routes';
import { ControlPlaneStore } from './control-plane.store';

/** What the fake publisher returns as run id (the NATS side is tested with the engine). */
const RUN_ID = '0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The §3.2 example definition (docs/docs/tutorial/defining-primitives.md). */
const flutterBuilder = {
  name: 'flutter-builder',
  version: '0.0.1',
  schema: {
    type: 'object',
    properties: { repository: { type: 'string' }, env: { type: 'array' } },
    required: ['repository', 'env'],
  },
};
const buildApp = {
  name: 'build-app',
  resource: 'flutter-builder',
  spec: { repository: 'https://github.com/org/repo', env: [] },
};
const flutterPipeline = {
  name: 'flutter-pipeline',
  resource: 'flutter-builder',
  description: 'A pipeline to build a flutter codebase into an APK',
  steps: [
    { id: '1', name: 'Start Build Environment', driver: 'container-start' },
    { id: '2', name: 'Clone Git Repository', driver: 'git-cloner' },
  ],
};

interface Answer {
  status: number;
  type: string | null;
  allow: string | null;
  text: string;
  /** The body parsed as JSON, when it is JSON. */
  json: any;
}

describe('Conveyor API routes (contract §10.1)', () => {
  let server: Server;
  let base: string;
  let store: ControlPlaneStore;
  let published: Resource<unknown>[];
  let core: { subject: string; data: string }[];
  let publish: (resource: Resource<unknown>) => Promise<string>;
  /** What handleApiRoute returned for the last request. */
  let handled: boolean | undefined;

  beforeAll(async () => {
    server = createServer((req, res) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const deps: ApiDeps = {
          store,
          publishResourceEvent: (resource) => publish(resource),
          publishCore: (subject, data) => {
            core.push({ subject, data });
          },
        };
        handled = await handleApiRoute(req, res, Buffer.concat(chunks), deps);
        if (!handled) fiberNotFound(req, res);
      })().catch((err: unknown) => {
        res.writeHead(599).end(String(err));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  beforeEach(() => {
    store = new ControlPlaneStore();
    published = [];
    core = [];
    handled = undefined;
    publish = async (resource) => {
      published.push(resource);
      return RUN_ID;
    };
  });

  async function call(
    method: string,
    path: string,
    options: { json?: unknown; body?: string | Uint8Array; contentType?: string } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = {};
    let body: string | Uint8Array | undefined = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['Content-Type'] = 'application/json';
    }
    if (options.contentType !== undefined) headers['Content-Type'] = options.contentType;
    const res = await fetch(`${base}${path}`, { method, headers, body });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      allow: res.headers.get('allow'),
      text,
      json,
    };
  }

  const post = (path: string, json: unknown) => call('POST', path, { json });
  const put = (path: string, json: unknown) => call('PUT', path, { json });

  function expectError(answer: Answer, status: number, error: string): void {
    expect({ status: answer.status, body: answer.text }).toEqual({ status, body: JSON.stringify({ error }) });
    expect(answer.type).toBe('application/json');
  }

  async function defineFlutterBuilder(): Promise<void> {
    expect((await post('/resource-definitions/', flutterBuilder)).status).toBe(201);
  }

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
      expect(handled).toBe(false);
      expect(res.status).toBe(404);
      expect(res.type).toBe('text/plain; charset=utf-8');
      expect(res.text).toBe('Cannot GET /nope/%3Cx%3E/a&amp;b&#39;c');
    });

    it('leaves /logs and /metrics to the other routes', async () => {
      await call('GET', '/logs');
      expect(handled).toBe(false);
      await call('POST', '/logs', { json: {} });
      expect(handled).toBe(false);
      await call('GET', '/metrics');
      expect(handled).toBe(false);
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
      const stored = store.getResource('flutter-builder', 'build-app')!;
      expect(stored.id).toMatch(UUID);
      expect(stored).toEqual({ ...buildApp, id: stored.id, metadata: { version: '1' } });
      expect(published).toEqual([stored]);
      expect(store.versions.get('flutter-builder/build-app/1')).toEqual(stored);
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
      expect(published).toEqual([]);
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
      expect(store.getResource('flutter-builder', 'build-app')?.name).toBe('build-app');
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
        /^Resource validation failed: validation failed: jsonschema: '\/env' does not validate with file:\/\/.*\/inline-schema#\/properties\/env\/type: must be array$/,
      );
      const missing = await post('/resources/', { ...buildApp, spec: { env: [] } });
      expect(missing.json.error).toMatch(
        /^Resource validation failed: validation failed: jsonschema: '' .*repository/,
      );
      expect(published).toEqual([]);
      expect(store.resources.size).toBe(0);
    });

    it('validates only spec, and a missing spec as null', async () => {
      const res = await post('/resources/', { name: 'x', resource: 'flutter-builder' });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatch(/^Resource validation failed: validation failed: .*must be object$/);
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
      expect(published).toHaveLength(1);
      expect(published[0]).toMatchObject({ name: 'build-app', pipeline: 'flutter-pipeline' });
    });

    it('answers 500 (not 409) to a duplicate, and publishes nothing for it', async () => {
      await post('/resources/', buildApp);
      expectError(
        await post('/resources/', buildApp),
        500,
        'Failed to insert resource: resource with name build-app and type flutter-builder already exists',
      );
      expect(published).toHaveLength(1);
    });

    it('answers 500 when the publish fails, and keeps the resource: a retry is a duplicate', async () => {
      publish = () => Promise.reject(new Error('nats: timeout'));
      expectError(
        await post('/resources/', buildApp),
        500,
        'Failed to publish resource event: nats: timeout',
      );
      expect(store.getResource('flutter-builder', 'build-app')).toBeDefined();
      publish = async () => RUN_ID;
      expect((await post('/resources/', buildApp)).status).toBe(500);
    });

    it('stores spec and metadata as Go re-marshals them: map keys sorted, <>& escaped on output', async () => {
      await post('/resource-definitions/', { name: 'any', schema: true });
      await post('/resources/', { name: '<b&b>', resource: 'any', spec: { z: 1, a: { y: 2, b: 3 } } });
      const stored = store.getResource('any', '<b&b>')!;
      expect(JSON.stringify(stored.spec)).toBe('{"a":{"b":3,"y":2},"z":1}');
      const res = await call('GET', '/resources/any/%3Cb&b%3E');
      expect(res.status).toBe(500); // the param stays percent-encoded, so it is not found
      store.resources.set('any/x', stored);
      const got = await call('GET', '/resources/any/x');
      expect(got.text).toContain('"name":"\\u003cb\\u0026b\\u003e"');
    });
  });

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
      const stored = store.getResource('flutter-builder', 'build-app')!;
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
      published = [];
    });

    it('keeps the id, increments the version, takes the other metadata from the body and publishes nothing', async () => {
      const created = store.getResource('flutter-builder', 'build-app')!;
      store.recordDriverResult('flutter-builder', 'build-app', {
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
      expect(store.getResource('flutter-builder', 'build-app')).toEqual(expected);
      expect(store.versions.get('flutter-builder/build-app/1')).toEqual(created);
      expect(store.versions.get('flutter-builder/build-app/2')).toEqual(expected);
      expect(published).toEqual([]);
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
      expect(store.getResource('flutter-builder', 'build-app')).toMatchObject({
        name: 'renamed',
        resource: 'x',
      });
      expect(store.getResource('x', 'renamed')).toBeUndefined();
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
      store.resources.set('flutter-builder/odd', { name: 'odd', resource: 'flutter-builder', spec: {} });
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
      published = [];
      const res = await call('DELETE', '/resources/flutter-builder/build-app');
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect(store.getResource('flutter-builder', 'build-app')).toBeUndefined();
      expect((await call('GET', '/resources/flutter-builder/build-app/1')).status).toBe(200);
      expect((await call('DELETE', '/resources/flutter-builder/build-app')).status).toBe(204);
      expect((await call('DELETE', '/resources/nope/nope')).status).toBe(204);
      expect(published).toEqual([]);
    });
  });

  describe('GET /resources/:type/:name/:version', () => {
    it('answers that version, or 500 when missing', async () => {
      await defineFlutterBuilder();
      await post('/resources/', buildApp);
      const res = await call('GET', '/resources/flutter-builder/build-app/1');
      expect(res.status).toBe(200);
      expect(res.json).toEqual(store.getResource('flutter-builder', 'build-app'));
      expectError(
        await call('GET', '/resources/flutter-builder/build-app/2'),
        500,
        'Failed to find resource: resource with name build-app, type flutter-builder and version 2 not found',
      );
    });
  });

  describe('resource definitions', () => {
    it('POST /resource-definitions/ answers 201 with a new id and every Go field', async () => {
      const res = await post('/resource-definitions', { name: 'plain', id: 'mine' });
      expect(res.status).toBe(201);
      expect(res.json.id).toMatch(UUID);
      expect(res.text).toBe(
        `{"id":"${res.json.id}","name":"plain","description":"","version":"","schema":null}`,
      );
      expect(store.definitions.get('plain')).toEqual(res.json);
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
      expect(store.definitions.get('flutter-builder')?.id).toBe('');
      expect((await call('GET', '/resource-definitions/flutter-builder')).json.id).toBe('');
    });

    it('POST /resource-definitions/apply updates: 201 echo, the stored document replaced so the old id is lost', async () => {
      await defineFlutterBuilder();
      const changed = { ...flutterBuilder, version: '0.0.2' };
      const res = await post('/resource-definitions/apply', changed);
      expect(res.status).toBe(201);
      expect(res.json).toEqual({ ...changed, id: '', description: '' });
      expect(store.definitions.get('flutter-builder')).toEqual({ ...changed, id: '', description: '' });
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
      expect(res.json).toEqual(store.definitions.get('flutter-builder'));
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
      expect(store.definitions.get('flutter-builder')).toEqual(res.json);
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
      expect(store.definitions.has('flutter-builder')).toBe(false);
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
      expect(store.pipelines.get('flutter-pipeline')).toEqual({ ...flutterPipeline, version: '' });
      expect((await post('/pipelines', { ...flutterPipeline, name: 'no-slash' })).status).toBe(201);
    });

    it('POST /pipelines/ echoes absent steps and metadata as null, and stores them as [] and absent', async () => {
      const res = await post('/pipelines/', { name: 'empty', resource: 'flutter-builder' });
      expect(res.status).toBe(201);
      expect(res.text).toBe(
        '{"name":"empty","description":"","version":"","resource":"flutter-builder","steps":null,"metadata":null}',
      );
      expect(store.pipelines.get('empty')).toEqual({
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
      expect(store.pipelines.get('flutter-pipeline')?.steps).toEqual([
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
      expect(store.pipelines.size).toBe(0);
    });

    it.each(['GET', 'PUT', 'DELETE'])('%s /pipelines/:name is not routed: Fiber 404', async (method) => {
      await post('/pipelines/', flutterPipeline);
      const res = await call(method, '/pipelines/flutter-pipeline');
      expect(res.status).toBe(404);
      expect(res.type).toBe('text/plain; charset=utf-8');
      expect(res.text).toBe(`Cannot ${method} /pipelines/flutter-pipeline`);
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
      expect(core).toHaveLength(1);
      expect(core[0].subject).toBe('application');
      const id = JSON.parse(core[0].data).id as string;
      expect(id).toMatch(/^[0-9a-f]{24}$/);
      expect(core[0].data).toBe(`{"event":"hello","payload":"{}","id":"${id}","run_id":"r"}`);
      expect(store.driverMessages.get(id)).toEqual({ event: 'hello', payload: '{}', id, run_id: 'r' });
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
      expect(core).toEqual([]);
    });
  });
});
