import { HttpService } from '@nestjs/axios';
import { ConveyorApiServer } from '@conveyor-ci/testing';
import { resolveConveyorConfig } from '../module/conveyor.options';
import { ConveyorApiError } from './conveyor-api.error';
import { ConveyorClient } from './conveyor.client';

describe('ConveyorClient against the server-faithful API', () => {
  let api: ConveyorApiServer;
  let client: ConveyorClient;

  beforeAll(async () => {
    api = await ConveyorApiServer.start();
    client = new ConveyorClient(
      new HttpService(),
      resolveConveyorConfig({ driverName: 'd', apiUrl: api.url }, {}),
    );
  });
  afterAll(() => api.close());

  it('gets a stored resource', async () => {
    const stored = api.put({ name: 'p1', resource: 'pipeline', spec: { steps: [] } });
    expect(await client.getResource('pipeline', 'p1')).toEqual(stored);
  });

  it('reads the server\'s 500 "not found" as a missing resource', async () => {
    expect(await client.getResource('pipeline', 'nope')).toBeNull();
    expect(api.requests).toContain('GET /resources/pipeline/nope');
  });

  it('throws a typed error for other failures, with status and server text', async () => {
    api.failNext(503);
    const error = await client.getResource('pipeline', 'p1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConveyorApiError);
    expect(error).toMatchObject({ status: 503, body: 'injected failure', isNotFound: false });
  });

  it('reports an unreachable server as status 0', async () => {
    const down = new ConveyorClient(
      new HttpService(),
      resolveConveyorConfig({ driverName: 'd', apiUrl: 'http://127.0.0.1:9' }, {}),
    );
    await expect(down.getResource('pipeline', 'p1')).rejects.toMatchObject({ status: 0 });
  });

  it('refuses a resource type that would change the route', async () => {
    await expect(client.getResource('a/b', 'x')).rejects.toThrow(/cannot be used in a NATS subject/);
  });
});
