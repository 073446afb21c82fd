import { ConveyorApiServer } from '@conveyor-ci/testing';
import { resolveClientConfig } from '../module/client.options';
import { ConveyorConfigError, resolveConveyorConfig } from '../module/conveyor.options';
import { InvalidApiNameError, resourcePath } from './api-paths';
import {
  ConveyorApiError,
  ConveyorApiOutcomeUnknownError,
  ConveyorAuthorizationError,
  isTransientApiError,
} from './conveyor-api.error';
import { ConveyorClient } from './conveyor.client';
import { confirmUpdate, previousResult, versionOf, withServerMetadata } from './driver-results';

describe('ConveyorClient against the server-faithful API', () => {
  let api: ConveyorApiServer;
  let client: ConveyorClient;

  beforeAll(async () => {
    api = await ConveyorApiServer.start();
    client = new ConveyorClient({ apiUrl: api.url, retries: 0 });
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
    expect(error).toMatchObject({ status: 503, body: 'injected failure', method: 'GET' });
    expect((error as ConveyorApiError).isNotFound()).toBe(false);
    expect((error as ConveyorApiError).isTransient()).toBe(true);
  });

  it('reports an unreachable server as status 0 with the socket error code', async () => {
    const down = new ConveyorClient({ apiUrl: 'http://127.0.0.1:9', retries: 0 });
    await expect(down.getResource('pipeline', 'p1')).rejects.toMatchObject({
      status: 0,
      code: 'ECONNREFUSED',
    });
  });

  it('refuses a resource type that would change the route or a subject, before sending', async () => {
    const before = api.requests.length;
    await expect(client.getResource('a/b', 'x')).rejects.toThrow(/cannot be used in a NATS subject/);
    await expect(client.getResource('pipeline', 'a/b')).rejects.toThrow(InvalidApiNameError);
    expect(api.requests.length).toBe(before);
  });
});

describe('API paths', () => {
  it('sends names raw, as Fiber reads its route params', () => {
    expect(resourcePath('t', "a:b@c+d=e,f$g&h!'()*;~")).toBe("/resources/t/a:b@c+d=e,f$g&h!'()*;~");
    expect(resourcePath('t', 'n', 3)).toBe('/resources/t/n/3');
  });

  it.each(['', '.', '..', 'a/b', 'a b', 'a%20b', 'a?b', 'a#b', 'é', 'a\\b'])(
    'refuses %j, which no raw path segment can carry',
    (name) => {
      expect(() => resourcePath('t', name)).toThrow(InvalidApiNameError);
    },
  );
});

describe('client options', () => {
  const resolve = (options: Parameters<typeof resolveClientConfig>[0], env: Record<string, string> = {}) => {
    const problems: string[] = [];
    const config = resolveClientConfig(options, env, problems);
    return { config, problems };
  };

  it('defaults to localhost:8080, 10 s per attempt, 3 retries', () => {
    const { config, problems } = resolve({});
    expect(problems).toEqual([]);
    expect(config).toMatchObject({
      apiUrl: 'http://localhost:8080',
      host: 'localhost',
      port: 8080,
      timeoutMs: 10_000,
      retries: 3,
    });
  });

  it.each([
    [{ CONVEYOR_API_URL: 'https://conveyor.test/' }, 'https://conveyor.test', 'conveyor.test', 443],
    [{ CONVEYOR_SERVER_HOST: 'http://10.0.0.5:9000' }, 'http://10.0.0.5:9000', '10.0.0.5', 9000],
    [
      { CONVEYOR_SERVER_HOST: 'api.local', CONVEYOR_SERVER_PORT: '8181' },
      'http://api.local:8181',
      'api.local',
      8181,
    ],
  ])('reads %j', (env, apiUrl, host, port) => {
    expect(resolve({}, env).config).toMatchObject({ apiUrl, host, port });
  });

  it('reads timeouts and retries from the environment and lists every bad value', () => {
    const env = { CONVEYOR_API_TIMEOUT_MS: '2500', CONVEYOR_API_RETRIES: '1' };
    expect(resolve({}, env).config).toMatchObject({ timeoutMs: 2500, retries: 1 });
    const { problems } = resolve(
      { retryBackoff: { initialMs: 500, maxMs: 100 } },
      { CONVEYOR_API_TIMEOUT_MS: 'soon', CONVEYOR_API_URL: 'ftp://x' },
    );
    expect(problems).toEqual([
      'option "apiUrl" from env CONVEYOR_API_URL="ftp://x": must be an http(s) URL such as http://localhost:8080',
      'option "client.timeoutMs" from env CONVEYOR_API_TIMEOUT_MS="soon": must be a whole number >= 1 and <= 2147483647 (2^31-1 ms, about 24.8 days: Node fires a longer timer at once)',
      'option "client.retryBackoff": maxMs (100) is below initialMs (500)',
    ]);
  });

  it("a standalone client with bad options throws the module's configuration error", () => {
    expect(() => new ConveyorClient({ apiUrl: 'nope' })).toThrow(ConveyorConfigError);
  });

  it('the module passes its apiUrl and client options through, retryApiErrors on by default', () => {
    const authorization = async () => 'Bearer x';
    const config = resolveConveyorConfig(
      { driverName: 'd', apiUrl: 'http://api:1', client: { retries: 0, authorization } },
      {},
    );
    expect(config.client).toMatchObject({ apiUrl: 'http://api:1', port: 1, retries: 0, authorization });
    expect(config.retryApiErrors).toBe(true);
    expect(
      resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_RETRY_API_ERRORS: 'false' }).retryApiErrors,
    ).toBe(false);
  });
});

describe('ConveyorApiError', () => {
  const error = (status: number, body: string, code?: string) =>
    new ConveyorApiError(status, body, 'GET', '/x', code);

  it('knows the server\'s 500 "not found" and deterministic 500s from outages', () => {
    expect(
      error(500, 'Failed to find resource: resource with name a and type b not found').isNotFound(),
    ).toBe(true);
    expect(error(404, 'Cannot GET /x').isNotFound()).toBe(true);
    expect(error(500, 'Failed to find resource: x not found').isTransient()).toBe(false);
    expect(
      error(500, 'Failed to insert resource: resource with name a and type b already exists').isTransient(),
    ).toBe(false);
    expect(error(500, 'Failed to publish resource event: nats: timeout').isTransient()).toBe(true);
    expect(error(502, '').isTransient()).toBe(true);
    expect(error(429, '').isTransient()).toBe(true);
    expect(error(400, 'Invalid request payload').isTransient()).toBe(false);
    expect(error(0, 'connect ECONNREFUSED', 'ECONNREFUSED').isTransient()).toBe(true);
    expect(error(0, 'aborted by the caller', 'ABORTED').isTransient()).toBe(false);
  });

  it('tells a request the server may have applied from one it surely did not', () => {
    expect(error(0, 'no response within 10 ms', 'ETIMEDOUT').mayHaveBeenApplied()).toBe(true);
    expect(error(0, 'socket hang up', 'ECONNRESET').mayHaveBeenApplied()).toBe(true);
    expect(error(504, 'gateway timeout').mayHaveBeenApplied()).toBe(true);
    expect(error(0, 'connect ECONNREFUSED', 'ECONNREFUSED').mayHaveBeenApplied()).toBe(false);
    expect(error(0, 'aborted by the caller', 'ABORTED').mayHaveBeenApplied()).toBe(false);
    expect(error(503, 'busy').mayHaveBeenApplied()).toBe(false);
  });

  it('an outcome-unknown error keeps its cause and is never transient', () => {
    const unknown = new ConveyorApiOutcomeUnknownError(error(0, 'no response', 'ETIMEDOUT'), 'read it back');
    expect(unknown).toMatchObject({ status: 0, code: 'ETIMEDOUT', outcomeUnknown: true });
    expect(unknown.message).toBe('GET /x -> ETIMEDOUT: no response; outcome unknown: read it back');
    expect([unknown.isTransient(), isTransientApiError(unknown)]).toEqual([false, false]);
    expect(error(0, 'x', 'ETIMEDOUT').outcomeUnknown).toBe(false);
  });

  it('an authorization provider failure redacts token-like text', () => {
    const failure = new ConveyorAuthorizationError(
      'GET',
      '/x',
      new Error('bad Bearer abc.def and eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9.sig'),
    );
    expect(failure.message).toBe(
      'GET /x: the authorization provider failed, so the request was not sent: bad Bearer *** and ***',
    );
    expect(isTransientApiError(failure)).toBe(false);
  });

  it('is recognised across package copies by name', () => {
    const foreign = Object.assign(new Error('x'), { name: 'ConveyorApiError', isTransient: () => true });
    expect(isTransientApiError(foreign)).toBe(true);
    expect(isTransientApiError(new Error('x'))).toBe(false);
  });
});

describe('driver results on a resource', () => {
  const result = { success: true, message: 'ok', data: { exitCodes: [0] }, driver: 'shell-runner' };

  it('reads the 0.6.x JSON string and the newer object layout', () => {
    expect(
      previousResult({ metadata: { 'driverresults.shell-runner': JSON.stringify(result) } }, 'shell-runner'),
    ).toEqual(result);
    expect(
      previousResult({ metadata: { driverresults: { 'shell-runner': result } } }, 'shell-runner'),
    ).toEqual(result);
  });

  it('is undefined when there is none or it is not a result', () => {
    expect(previousResult({ metadata: { version: '1' } }, 'shell-runner')).toBeUndefined();
    expect(previousResult({ metadata: null }, 'shell-runner')).toBeUndefined();
    expect(
      previousResult({ metadata: { 'driverresults.shell-runner': '{oops' } }, 'shell-runner'),
    ).toBeUndefined();
    expect(
      previousResult({ metadata: { 'driverresults.shell-runner': '{"message":"x"}' } }, 'shell-runner'),
    ).toBeUndefined();
  });

  it("an update keeps the stored driverresults, the body wins, version is the server's", () => {
    const current = { metadata: { version: '3', 'driverresults.a': '{}', owner: 'old' } };
    expect(withServerMetadata(current, { metadata: { owner: 'new', version: '9' } })).toEqual({
      'driverresults.a': '{}',
      owner: 'new',
    });
  });
});

describe('reading back a resource PUT that got no answer', () => {
  const sent = {
    name: 'n',
    resource: 't',
    metadata: { owner: 'me', version: '4' },
    spec: { size: 2, tags: ['a'] },
  };
  const storedAs = (version: string, spec: unknown, extra: Record<string, string> = {}) => ({
    ...sent,
    id: 'i',
    metadata: { ...extra, owner: 'me', version },
    spec,
  });

  it('reads the version the server counts with', () => {
    expect([
      versionOf({ version: '7' }),
      versionOf({ version: 'x' }),
      versionOf({}),
      versionOf(null),
    ]).toEqual([7, undefined, undefined, undefined]);
  });

  it('with the replaced version: unmoved is not applied, raised with the update is applied, else a conflict', () => {
    expect(confirmUpdate(sent, storedAs('4', { size: 1 }), 4)).toBe('not-applied');
    const applied = storedAs('5', { tags: ['a'], size: 2 }, { 'driverresults.b': '{}' });
    expect(confirmUpdate(sent, applied, 4)).toEqual({ applied: { status: 200, data: applied } });
    expect(confirmUpdate(sent, storedAs('6', { size: 9 }), 4)).toEqual({
      conflict: expect.stringMatching(/^the resource is at version 6 \(this update replaced version 4\)/),
    });
  });

  it('without it, the content decides: the update held is applied, anything else is unknown (never sent again)', () => {
    expect(confirmUpdate(sent, storedAs('9', { size: 2, tags: ['a'] }), undefined)).toMatchObject({
      applied: { status: 200 },
    });
    const unknown = { conflict: expect.stringMatching(/carried no version/) };
    expect(confirmUpdate(sent, storedAs('9', { size: 1 }), undefined)).toEqual(unknown);
    expect(
      confirmUpdate(sent, { ...storedAs('9', sent.spec), metadata: { version: '9' } }, undefined),
    ).toEqual(unknown);
  });
});
