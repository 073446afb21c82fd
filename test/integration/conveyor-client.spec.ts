import { Agent } from 'node:http';
import { HttpService } from '@nestjs/axios';
import axios from 'axios';
import { ConveyorClient, ConveyorLog, ResourceDefinition } from '@conveyor-ci/nestjs';
import { ConveyorControlPlane } from '@conveyor-ci/testing';
import { rejectionOf } from '../support/api-error';

/**
 * Every ConveyorClient method against the local control plane (the server's routes, status codes
 * and quirks over a real nats-server). The client uses no keep-alive, so the plane's open
 * connections are the client's live requests and streams only.
 */
let plane: ConveyorControlPlane;
let client: ConveyorClient;

const widget: ResourceDefinition = {
  name: 'widget',
  version: '0.0.1',
  schema: { type: 'object', properties: { size: { type: 'integer' } }, required: ['size'] },
};

beforeAll(async () => {
  plane = await ConveyorControlPlane.start({ heartbeatMs: 200 });
  const http = new HttpService(axios.create({ httpAgent: new Agent({ keepAlive: false }) }));
  client = new ConveyorClient({ apiUrl: plane.apiUrl, retries: 0 }, http);
  await client.createOrUpdateResourceDefinition(widget);
});
afterAll(() => plane.stop());

describe('server metadata', () => {
  it('knows its URL, host and port, and reads /health, / and /metrics', async () => {
    const { port } = new URL(plane.apiUrl);
    expect(client.getApiUrl()).toBe(plane.apiUrl);
    expect([client.host, client.port]).toEqual(['127.0.0.1', Number(port)]);
    expect(await client.health()).toEqual({ status: 'healthy', time: expect.any(Number) });
    expect(await client.serverInfo()).toMatch(/^CONVEYOR API SERVER/);
    expect(await client.metrics()).toMatch(/conveyor_dev_resources \d+/);
  });
});

describe('resource definitions', () => {
  const gadget: ResourceDefinition = { name: 'gadget', version: '1', schema: { type: 'object' } };

  it('creates, reads, updates and deletes one', async () => {
    const created = await client.createResourceDefinition(gadget);
    expect(created).toMatchObject({ name: 'gadget', id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(await client.getResourceDefinition('gadget')).toMatchObject({ name: 'gadget', version: '1' });
    expect(await client.updateResourceDefinition({ ...gadget, version: '2' })).toMatchObject({
      version: '2',
    });
    expect(plane.store.definitions.get('gadget')).toMatchObject({ version: '2' });
    await expect(client.deleteResourceDefinition('gadget')).resolves.toBeUndefined();
    expect(plane.store.definitions.has('gadget')).toBe(false);
    expect(await client.getResourceDefinition('gadget')).toBeNull();
  });

  it('reports a duplicate create and a missing definition as the server does', async () => {
    const duplicate = await rejectionOf(client.createResourceDefinition(widget));
    expect(duplicate).toMatchObject({ status: 500, method: 'POST', path: '/resource-definitions/' });
    expect(duplicate.body).toBe(
      'Failed to insert resource definition: resource definition with name widget already exists',
    );
    expect(duplicate.isTransient()).toBe(false);
    const missing = await rejectionOf(client.deleteResourceDefinition('nothing-here'));
    expect(missing.isNotFound()).toBe(true);
    expect(
      await rejectionOf(client.updateResourceDefinition({ name: 'nothing-here', schema: {} })),
    ).toMatchObject({
      status: 500,
    });
  });

  it('apply creates and replaces', async () => {
    await client.createOrUpdateResourceDefinition({ name: 'applied', schema: { type: 'object' } });
    await client.createOrUpdateResourceDefinition({
      name: 'applied',
      version: '9',
      schema: { type: 'object' },
    });
    expect(plane.store.definitions.get('applied')).toMatchObject({ version: '9' });
  });
});

describe('resources', () => {
  it('creates (201 with a run id), reads, updates (version + 1), reads a version, deletes (204)', async () => {
    const created = await client.createResource({ name: 'w1', resource: 'widget', spec: { size: 1 } });
    expect(created).toEqual({
      name: 'w1',
      runid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      message: 'Resource created successfully',
      version: '1',
    });
    const stored = await client.getResource<{ size: number }>('widget', 'w1');
    expect(stored).toMatchObject({ name: 'w1', spec: { size: 1 }, metadata: { version: '1' } });
    const updated = await client.updateResource({ ...stored!, spec: { size: 2 } });
    expect(updated).toMatchObject({ id: stored!.id, spec: { size: 2 }, metadata: { version: '2' } });
    expect(await client.getResourceVersion('widget', 'w1', 1)).toMatchObject({ spec: { size: 1 } });
    expect(await client.getResourceVersion('widget', 'w1', 7)).toBeNull();
    await expect(client.deleteResource('widget', 'w1')).resolves.toBeUndefined();
    expect(await client.getResource('widget', 'w1')).toBeNull();
    await expect(client.deleteResource('widget', 'w1')).resolves.toBeUndefined(); // 204 even when gone
  });

  it('recognises the 500 "not found" of an unknown type', async () => {
    const error = await rejectionOf(client.createResource({ name: 'x', resource: 'no-such-type', spec: {} }));
    expect(error).toMatchObject({
      status: 500,
      body: 'Failed to find resource definition: resource definition with name no-such-type not found',
    });
    expect(error.isNotFound()).toBe(true);
    expect(await client.getResource('no-such-type', 'x')).toBeNull();
  });

  it('reports a duplicate create (500) and a schema violation (400 with the server text)', async () => {
    await client.createResource({ name: 'dup', resource: 'widget', spec: { size: 1 } });
    const duplicate = await rejectionOf(
      client.createResource({ name: 'dup', resource: 'widget', spec: { size: 1 } }),
    );
    expect(duplicate).toMatchObject({
      status: 500,
      body: 'Failed to insert resource: resource with name dup and type widget already exists',
    });
    const invalid = await rejectionOf(
      client.createResource({ name: 'bad', resource: 'widget', spec: { size: 'x' } }),
    );
    expect(invalid.status).toBe(400);
    expect(invalid.body).toMatch(
      /^Resource validation failed: validation failed: jsonschema: '\/size' does not validate/,
    );
    expect(invalid.isTransient()).toBe(false);
    expect(plane.store.getResource('widget', 'bad')).toBeUndefined();
  });

  it.each([':', '@', '+', '=', ',', '$', '&'])(
    'round-trips a name with %s through create, get, update and delete',
    async (c) => {
      const name = `name${c}with${c}char`;
      await client.createResource({ name, resource: 'widget', spec: { size: 1 } });
      expect(plane.store.getResource('widget', name)).toMatchObject({ name });
      const stored = await client.getResource('widget', name);
      expect(stored).toMatchObject({ name });
      await client.updateResource({ ...stored!, spec: { size: 5 } });
      expect(plane.store.getResource('widget', name)).toMatchObject({
        spec: { size: 5 },
        metadata: { version: '2' },
      });
      await client.deleteResource('widget', name);
      expect(plane.store.getResource('widget', name)).toBeUndefined();
    },
  );

  it("keeps the engine's driverresults on request, where a plain PUT drops them", async () => {
    await client.createResource({ name: 'kept', resource: 'widget', spec: { size: 1 } });
    plane.store.recordDriverResult('widget', 'kept', {
      success: true,
      message: 'ok',
      data: null,
      driver: 'a',
    });
    const stored = (await client.getResource('widget', 'kept'))!;
    const kept = await client.updateResourceKeepingResults({
      ...stored,
      metadata: { owner: 'me' },
      spec: { size: 2 },
    });
    expect(kept.metadata).toEqual({ 'driverresults.a': expect.any(String), owner: 'me', version: '2' });
    const dropped = await client.updateResource({ ...stored, metadata: { owner: 'me' } });
    expect(dropped.metadata).toEqual({ owner: 'me', version: '3' });
  });
});

describe('pipelines, logs and broadcasts', () => {
  it('creates a pipeline and starts a run of it', async () => {
    const pipeline = {
      name: 'widget-pipeline',
      resource: 'widget',
      steps: [{ name: 's', driver: 'nobody' }],
    };
    expect(await client.createPipeline(pipeline)).toMatchObject({
      name: 'widget-pipeline',
      steps: [{ driver: 'nobody' }],
    });
    const run = await client.createResource({
      name: 'piped',
      resource: 'widget',
      pipeline: 'widget-pipeline',
      spec: { size: 1 },
    });
    expect(run.runid).toMatch(/^[0-9a-f-]{36}$/);
    const unknown = await rejectionOf(
      client.createResource({ name: 'p2', resource: 'widget', pipeline: 'nope', spec: { size: 1 } }),
    );
    expect(unknown.body).toBe('Failed to get pipeline: pipeline not found');
    expect(unknown.isNotFound()).toBe(true);
  });

  it('stores and queries log lines', async () => {
    const log: ConveyorLog = { runid: 'run-q', driver: 'd', pipeline: '', timestamp: '1', message: 'hello' };
    await client.createLog(log);
    expect(await client.getLogs({ runid: 'run-q' })).toEqual([log]);
    expect(await client.getLogs({ runid: 'run-none' })).toEqual([]);
  });

  it('broadcasts a message on core `application`', async () => {
    const received = new Promise<string>((resolve) => {
      const sub = plane.nc.subscribe('application', { max: 1, callback: (_e, m) => resolve(m.string()) });
      void sub;
    });
    await plane.nc.flush();
    expect(await client.broadcastMessage({ event: 'ping', payload: '{}', run_id: 'r' })).toEqual({
      message: 'message published',
    });
    expect(JSON.parse(await received)).toMatchObject({
      event: 'ping',
      id: expect.stringMatching(/^[0-9a-f]{24}$/),
    });
  });
});
