import {
  ConveyorApiError,
  ConveyorApiOutcomeUnknownError,
  ConveyorAuthorizationError,
  ConveyorClient,
} from '@conveyor-ci/nestjs';
import { rejectionOf } from '../support/api-error';
import { FlakyHttpServer } from '../support/flaky-http.server';

/** Retries, timeouts, aborts and the authorization header against a real HTTP server that fails on cue. */
let server: FlakyHttpServer;
const clientWith = (options: ConstructorParameters<typeof ConveyorClient>[0] = {}) =>
  new ConveyorClient({ apiUrl: server.url, retryBackoff: { initialMs: 10, maxMs: 40 }, ...options });

beforeAll(async () => {
  server = await FlakyHttpServer.start();
});
afterAll(() => server.close());

describe('retries', () => {
  it('retries an idempotent call through 5xx and dropped connections, then succeeds', async () => {
    server.failNext({ status: 503 }, 'reset', { status: 502 });
    await expect(clientWith().getResourceDefinition('d')).resolves.toEqual({ ok: true });
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual(
      Array(4).fill('GET /resource-definitions/d'),
    );
  });

  it.each([
    ['PUT', (c: ConveyorClient) => c.updateResource({ name: 'n', resource: 't', spec: {} })],
    ['DELETE', (c: ConveyorClient) => c.deleteResource('t', 'n')],
    ['POST', (c: ConveyorClient) => c.createOrUpdateResourceDefinition({ name: 't', schema: {} })],
    ['POST', (c: ConveyorClient) => c.createPipeline({ name: 'p', resource: 't', steps: [] })],
  ])('retries the idempotent %s %#', async (method, call) => {
    server.failNext({ status: 503 });
    await call(clientWith());
    expect(server.requests.map((r) => r.method)).toEqual([method, method]);
  });

  it('never sends a create twice: 5xx and a dropped connection are thrown at once', async () => {
    const client = clientWith();
    server.failNext({ status: 503 });
    expect((await rejectionOf(client.createResource({ name: 'n', resource: 't', spec: {} }))).status).toBe(
      503,
    );
    expect(server.requests).toHaveLength(1);
    server.failNext('reset');
    // The connection dropped after the request went out: the server may have created it.
    const reset = await rejectionOf(client.createResourceDefinition({ name: 't', schema: {} }));
    expect(reset).toBeInstanceOf(ConveyorApiOutcomeUnknownError);
    expect(reset).toMatchObject({ status: 0, code: 'ECONNRESET', outcomeUnknown: true });
    expect(reset.isTransient()).toBe(false);
    expect(server.requests).toHaveLength(1);
    server.failNext({ status: 503 });
    await rejectionOf(client.broadcastMessage({ event: 'e', payload: '', run_id: 'r' }));
    expect(server.requests).toHaveLength(1);
  });

  it('gives up after `retries` extra attempts with the last error', async () => {
    server.failNext(...Array(10).fill({ status: 503, body: 'still down' }));
    const error = await rejectionOf(clientWith({ retries: 2 }).getResource('t', 'n'));
    expect(error).toMatchObject({ status: 503, body: 'still down' });
    expect(server.requests).toHaveLength(3);
  });

  it("does not retry the server's deterministic 500s (not found, already exists) or 4xx", async () => {
    const client = clientWith();
    server.failNext({
      status: 500,
      body: 'Failed to find resource: resource with name n and type t not found',
    });
    await expect(client.getResource('t', 'n')).resolves.toBeNull();
    expect(server.requests).toHaveLength(1);
    server.failNext({ status: 400, body: 'Invalid request payload' });
    await rejectionOf(client.updateResource({ name: 'n', resource: 't', spec: {} }));
    expect(server.requests).toHaveLength(1);
  });
});

describe('deletes', () => {
  it('counts a 404 after a delete that got no answer as done', async () => {
    server.failNext('hang', { status: 404, body: 'not found' });
    await expect(clientWith({ timeoutMs: 200 }).deleteResource('t', 'gone')).resolves.toBeUndefined();
    expect(server.requests.map((r) => r.method)).toEqual(['DELETE', 'DELETE']);
  });

  it('reports a 404 answered to the first attempt, and one after an answered 503', async () => {
    server.failNext({ status: 404, body: 'not found' });
    expect((await rejectionOf(clientWith().deleteResource('t', 'gone'))).status).toBe(404);
    server.failNext({ status: 503 }, { status: 404, body: 'not found' });
    expect((await rejectionOf(clientWith().deleteResource('t', 'gone'))).status).toBe(404);
    expect(server.requests).toHaveLength(2);
  });
});

describe('timeouts and aborts', () => {
  it('times out an attempt that gets no answer, and retries it when idempotent', async () => {
    server.failNext('hang', 'hang');
    const started = Date.now();
    const error = await rejectionOf(clientWith({ timeoutMs: 200, retries: 1 }).getResource('t', 'n'));
    expect(error).toMatchObject({ status: 0, code: 'ETIMEDOUT', body: 'no response within 200 ms' });
    expect(server.requests).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("a per-call timeout wins over the client's", async () => {
    server.failNext('hang');
    const error = await rejectionOf(
      clientWith({ timeoutMs: 60_000 }).getResource('t', 'n', { timeoutMs: 100, retries: 0 }),
    );
    expect(error.code).toBe('ETIMEDOUT');
  });

  it('stops at once, without retrying, when the caller aborts', async () => {
    server.failNext('hang', 'hang');
    const abort = new AbortController();
    const call = rejectionOf(
      clientWith({ timeoutMs: 60_000 }).getResource('t', 'n', { signal: abort.signal }),
    );
    setTimeout(() => abort.abort(), 100);
    const error = await call;
    // Aborted after the request went out: the server may still apply it (a create would be
    // outcome-unknown), and it is the caller's own outcome, not an outage to retry.
    expect(error).toMatchObject({ status: 0, code: 'ABORTED_IN_FLIGHT' });
    expect(error.mayHaveBeenApplied()).toBe(true);
    expect(error.isTransient()).toBe(false);
    expect(server.requests).toHaveLength(1);
  });

  it('an abort before the request is sent is surely not applied', async () => {
    const abort = new AbortController();
    abort.abort();
    const error = await rejectionOf(clientWith({}).getResource('t', 'pre-aborted', { signal: abort.signal }));
    expect(error).toMatchObject({ status: 0, code: 'ABORTED' });
    expect(error.mayHaveBeenApplied()).toBe(false);
    expect(server.requests.filter((r) => r.url.endsWith('/pre-aborted'))).toEqual([]);
  });

  it('bounds an authorization provider that never answers by the attempt timeout', async () => {
    const never = () => new Promise<string>(() => undefined);
    const call = clientWith({ timeoutMs: 200, retries: 0, authorization: never }).getResource(
      't',
      'no-token',
    );
    const error = await call.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConveyorAuthorizationError);
    expect((error as Error).message).toMatch(/did not answer within 200 ms/);
    expect(server.requests.filter((r) => r.url.endsWith('/no-token'))).toEqual([]);
  });
});

describe('authorization', () => {
  it('asks the provider before every attempt and keeps the token out of errors', async () => {
    let issued = 0;
    const client = clientWith({ retries: 1, authorization: async () => `Bearer token-${++issued}` });
    server.failNext({ status: 503 }, { status: 503 });
    const error = await rejectionOf(client.getResource('t', 'n'));
    expect(server.requests.map((r) => r.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
    expect(`${error.message} ${error.body} ${JSON.stringify(error)} ${String(error.stack)}`).not.toMatch(
      /token-/,
    );
  });

  it('reports a provider that throws as an authorization error: nothing sent, no retry, secrets redacted', async () => {
    let asked = 0;
    const client = clientWith({
      retries: 3,
      authorization: () => {
        asked++;
        throw new Error('cannot sign with /keys/driver.key (last token Bearer eyJhbGciOi.eyJzdWIi.c2ln)');
      },
    });
    server.failNext();
    const error = await client.getResource('t', 'n').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConveyorAuthorizationError);
    expect(error).not.toBeInstanceOf(ConveyorApiError);
    expect(error).toMatchObject({
      name: 'ConveyorAuthorizationError',
      method: 'GET',
      path: '/resources/t/n',
    });
    const text = `${(error as Error).message} ${JSON.stringify(error)} ${String((error as Error).stack)}`;
    expect((error as Error).message).toBe(
      'GET /resources/t/n: the authorization provider failed, so the request was not sent: ' +
        'cannot sign with /keys/driver.key (last token Bearer ***)',
    );
    expect(text).not.toMatch(/eyJ/);
    expect([asked, server.requests.length]).toEqual([1, 0]);
  });

  it('does the same for a provider whose promise rejects, also when opening a log stream', async () => {
    const client = clientWith({ authorization: () => Promise.reject(new Error('key file unreadable')) });
    server.failNext();
    await expect(client.health()).rejects.toThrow(ConveyorAuthorizationError);
    const streamError = await (async () => {
      for await (const log of client.streamPipelineLogs('r')) return log;
    })().catch((e: unknown) => e);
    expect(streamError).toBeInstanceOf(ConveyorAuthorizationError);
    expect(server.requests).toHaveLength(0);
  });

  it('sends no header when the provider gives none', async () => {
    server.failNext();
    await clientWith({ authorization: () => undefined }).getResourceDefinition('d');
    expect(server.requests[0].authorization).toBeUndefined();
  });
});
