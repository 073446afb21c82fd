import { Agent } from 'node:http';
import { HttpService } from '@nestjs/axios';
import axios from 'axios';
import {
  ConveyorApiError,
  ConveyorApiOutcomeUnknownError,
  ConveyorClient,
  Resource,
  ResourceDefinition,
} from '@conveyor-ci/nestjs';
import { ConveyorControlPlane } from '@conveyor-ci/testing';
import { LateAnswerProxy } from '../support/late-answer.proxy';

/**
 * What a request that got no answer did on the server: the local control plane behind a proxy that
 * lets the server apply a request and then keeps (or drops) the answer. Each case asserts what the
 * server received and stored, not only what the client returned.
 */
let plane: ConveyorControlPlane;
let proxy: LateAnswerProxy;
/** Through the proxy, with an attempt timeout well below the tests' and fast retries. */
let client: ConveyorClient;
/** Straight to the plane: the test's own view of the server. */
let direct: ConveyorClient;

const widget: ResourceDefinition = {
  name: 'widget',
  version: '0.0.1',
  schema: { type: 'object', properties: { size: { type: 'integer' } }, required: ['size'] },
};
const noKeepAlive = () => new HttpService(axios.create({ httpAgent: new Agent({ keepAlive: false }) }));

let counter = 0;
const newName = () => `w-${++counter}`;
const stored = (name: string) => plane.store.getResource('widget', name);
/** What the engine does with a step's result: written on the stored resource, version unchanged. */
const engineWritesResult = (name: string) => () =>
  plane.store.recordDriverResult('widget', name, {
    success: true,
    message: 'built',
    data: null,
    driver: 'builder',
  });

beforeAll(async () => {
  plane = await ConveyorControlPlane.start();
  proxy = await LateAnswerProxy.start(plane.apiUrl);
  direct = new ConveyorClient({ apiUrl: plane.apiUrl, retries: 0 }, noKeepAlive());
  client = new ConveyorClient(
    { apiUrl: proxy.url, timeoutMs: 300, retries: 3, retryBackoff: { initialMs: 20, maxMs: 50 } },
    noKeepAlive(),
  );
  await direct.createOrUpdateResourceDefinition(widget);
});
beforeEach(() => proxy.reset());
afterAll(async () => {
  await proxy.close();
  await plane.stop();
});

async function createWidget(): Promise<Resource<{ size: number }>> {
  const name = newName();
  await direct.createResource({ name, resource: 'widget', spec: { size: 1 } });
  return (await direct.getResource<{ size: number }>('widget', name))!;
}

describe('updateResource (PUT) after a late answer', () => {
  it('is not sent again when the server applied it: one PUT, version 1 -> 2, the engine’s result kept', async () => {
    const current = await createWidget();
    proxy.spoilNext('PUT', { meanwhile: engineWritesResult(current.name) });
    const updated = await client.updateResource({ ...current, spec: { size: 2 } });
    expect(proxy.count('PUT')).toBe(1);
    expect(stored(current.name)?.metadata).toEqual({
      'driverresults.builder': expect.stringContaining('"built"'),
      version: '2',
    });
    expect(updated).toMatchObject({ name: current.name, spec: { size: 2 }, metadata: { version: '2' } });
  });

  it('also without a version in the body: the stored content is the update, so it counts as done', async () => {
    const current = await createWidget();
    proxy.spoilNext('PUT', { answer: 'drop' });
    const { name, resource } = current;
    await client.updateResource({ name, resource, metadata: { owner: 'me' }, spec: { size: 3 } });
    expect(proxy.count('PUT')).toBe(1);
    expect(stored(name)).toMatchObject({ spec: { size: 3 }, metadata: { owner: 'me', version: '2' } });
  });

  it('is sent again when the re-read shows it never arrived', async () => {
    const current = await createWidget();
    proxy.spoilNext('PUT', { forward: false });
    await client.updateResource({ ...current, spec: { size: 4 } });
    expect([proxy.count('PUT'), proxy.count('PUT', 'forwarded')]).toEqual([2, 1]);
    expect(stored(current.name)).toMatchObject({ spec: { size: 4 }, metadata: { version: '2' } });
  });

  it('is not sent again over another writer’s change: an error that says the outcome is unknown', async () => {
    const current = await createWidget();
    proxy.spoilNext('PUT', {
      meanwhile: () => direct.updateResource({ ...current, spec: { size: 99 } }),
    });
    const error = await client.updateResource({ ...current, spec: { size: 5 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConveyorApiOutcomeUnknownError);
    expect(error).toMatchObject({ method: 'PUT', outcomeUnknown: true });
    expect((error as ConveyorApiError).isTransient()).toBe(false);
    expect((error as Error).message).toMatch(/version 3/);
    expect(proxy.count('PUT')).toBe(1);
    expect(stored(current.name)).toMatchObject({ spec: { size: 99 }, metadata: { version: '3' } });
  });
});

describe('a create (POST) that got no answer', () => {
  it('ends in an "outcome unknown" error, never a transient one, and is sent once', async () => {
    const name = newName();
    proxy.spoilNext('POST');
    const error = await client
      .createResource({ name, resource: 'widget', spec: { size: 1 } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConveyorApiOutcomeUnknownError);
    expect(error).toBeInstanceOf(ConveyorApiError);
    expect(error).toMatchObject({ status: 0, code: 'ETIMEDOUT', outcomeUnknown: true });
    expect((error as ConveyorApiError).isTransient()).toBe(false);
    expect((error as Error).message).toMatch(/^POST \/resources\/ -> ETIMEDOUT: .*outcome unknown/);
    expect(proxy.count('POST')).toBe(1);
    expect(stored(name)).toBeDefined(); // the server did create it: a redelivered handler would fail "already exists"
  });
});

describe('a delete that got no answer', () => {
  it('is a success when the retry finds nothing (the first attempt did it)', async () => {
    await direct.createResourceDefinition({ name: 'doomed', schema: {} });
    proxy.spoilNext('DELETE');
    await expect(client.deleteResourceDefinition('doomed')).resolves.toBeUndefined();
    expect(proxy.count('DELETE')).toBe(2); // the retry got the server's 500 "not found"
    expect(plane.store.definitions.has('doomed')).toBe(false);
  });

  it('still reports a missing definition when the first attempt was answered', async () => {
    const error = await client.deleteResourceDefinition('never-there').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConveyorApiError);
    expect((error as ConveyorApiError).isNotFound()).toBe(true);
    expect(proxy.count('DELETE')).toBe(1);
  });
});
