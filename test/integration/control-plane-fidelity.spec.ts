import { request } from 'node:http';
import { eventually } from '@conveyor-ci/testing';
import { useControlPlane } from '../support/control-plane-suite';

/**
 * What a browser, a scraper or a driver sees of the local control suite.plane where the real server
 * (Fiber v2.52, BadgerDB, its engine) was seen to differ (contract §10.2a): CORS, framing, stored
 * driver results, the log store's key order, and which events a resource publishes.
 */
const suite = useControlPlane();

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request with node:http, so every response header (framing included) is visible as sent. */
function raw(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(`${suite.plane.apiUrl}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const postJson = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  raw('POST', path, { 'Content-Type': 'application/json', ...headers }, JSON.stringify(body));

describe('CORS: Fiber cors.New() defaults (contract §10, §10.2a)', () => {
  it('answers a preflight 204 with Access-Control-Allow-Origin: * and the default methods, on any path', async () => {
    for (const path of ['/resources', '/no/such/route']) {
      const answer = await raw('OPTIONS', path, {
        Origin: 'http://localhost:3000',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,authorization',
      });
      expect(answer.status).toBe(204);
      expect(answer.body).toBe('');
      expect(answer.headers['access-control-allow-origin']).toBe('*');
      expect(answer.headers['access-control-allow-methods']).toBe('GET,POST,HEAD,PUT,DELETE,PATCH');
      // No AllowHeaders configured: Fiber echoes what the browser asked for.
      expect(answer.headers['access-control-allow-headers']).toBe('content-type,authorization');
      expect(answer.headers.vary).toBe(
        'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
      );
    }
  });

  it('sets Access-Control-Allow-Origin: * on every answer to a request with Origin, errors included', async () => {
    const origin = { Origin: 'https://example.org' };
    const root = await raw('GET', '/', origin);
    expect(root.status).toBe(200);
    expect(root.headers['access-control-allow-origin']).toBe('*');
    expect(root.headers['access-control-allow-methods']).toBeUndefined();
    expect(root.headers.vary).toBeUndefined();
    const notFound = await raw('GET', '/nope', origin);
    expect(notFound.status).toBe(404);
    expect(notFound.headers['access-control-allow-origin']).toBe('*');
    const error = await postJson('/resources', { name: 'x', resource: 'undefined-type', spec: {} }, origin);
    expect(error.status).toBe(500);
    expect(error.headers['access-control-allow-origin']).toBe('*');
    const logs = await raw('GET', '/logs?runid=none', origin);
    expect(logs.headers['access-control-allow-origin']).toBe('*');
  });

  it('adds nothing without Origin, and lets an OPTIONS without Access-Control-Request-Method reach the router', async () => {
    expect((await raw('GET', '/')).headers['access-control-allow-origin']).toBeUndefined();
    const options = await raw('OPTIONS', '/', { Origin: 'https://example.org' });
    expect(options.status).toBe(405);
  });
});

describe('framing (contract §10.2a)', () => {
  it('sends bodies with Content-Length, not chunked, and no Keep-Alive header', async () => {
    await postJson('/resource-definitions/apply', { name: 'framed', schema: { type: 'object' } });
    const answers = [
      await raw('GET', '/'),
      await raw('GET', '/resource-definitions/framed'),
      await raw('GET', '/resources/framed/missing'),
      await raw('GET', '/nope'),
      await raw('GET', '/logs?runid=none'),
      await raw('POST', '/logs', { 'Content-Type': 'application/json' }, '{"runid":"r","message":"m"}'),
    ];
    for (const answer of answers) {
      expect(answer.headers['transfer-encoding']).toBeUndefined();
      expect(answer.headers['keep-alive']).toBeUndefined();
      expect(answer.headers['content-length']).toBe(String(Buffer.byteLength(answer.body)));
    }
  });
});

describe('the engine and the log store as the real server keeps them', () => {
  beforeAll(async () => {
    await postJson('/resource-definitions/apply', { name: 'fidelity', schema: { type: 'object' } });
    await postJson('/pipelines', {
      name: 'fidelity-pipeline',
      resource: 'fidelity',
      steps: [{ name: 'only', driver: 'sorter' }],
    });
  });

  it('publishes only pipelines.pipeline.init for a resource naming a pipeline (no resources.{type})', async () => {
    const seen: string[] = [];
    const subs = ['resources.>', 'pipelines.pipeline.init'].map((subject) =>
      suite.nc.subscribe(subject, { callback: (_err, msg) => seen.push(msg.subject) }),
    );
    await suite.nc.flush();
    const created = await postJson('/resources', {
      name: 'only-init',
      resource: 'fidelity',
      pipeline: 'fidelity-pipeline',
      spec: {},
    });
    expect(created.status).toBe(201);
    await eventually(() => seen.length > 0, 'the init event');
    // A resource without a pipeline, sent after, marks the end of what the first one published.
    await postJson('/resources', { name: 'broadcast', resource: 'fidelity', spec: {} });
    await eventually(() => seen.length > 1, 'the broadcast');
    subs.forEach((sub) => sub.unsubscribe());
    expect(seen).toEqual(['pipelines.pipeline.init', 'resources.fidelity']);
  });

  it('stores driverresults.<driver> re-encoded as Go does: data keys sorted, <, >, & escaped', async () => {
    const created = JSON.parse(
      (
        await postJson('/resources', {
          name: 'sorted-result',
          resource: 'fidelity',
          pipeline: 'fidelity-pipeline',
          spec: {},
        })
      ).body,
    );
    const stored = JSON.parse((await raw('GET', '/resources/fidelity/sorted-result')).body);
    // The driver's own key order, not sorted, as a TypeScript driver would send it.
    const event =
      `{"event":"driver.result","run_id":"${created.runid}","resource":${JSON.stringify(stored)},` +
      '"driverresult":{"driver":"sorter","data":{"zeta":1,"alpha":"<a&b>","nested":{"y":[{"d":1,"c":2}],"x":null}},"message":"ok","success":true}}';
    await suite.nc.jetstream().publish('pipelines.driver.result', event);
    let metadata: Record<string, string> = {};
    await eventually(async () => {
      metadata = JSON.parse((await raw('GET', '/resources/fidelity/sorted-result')).body).metadata;
      return 'driverresults.sorter' in metadata;
    }, 'the stored result');
    expect(metadata['driverresults.sorter']).toBe(
      '{"success":true,"message":"ok","data":{"alpha":"\\u003ca\\u0026b\\u003e","nested":{"x":null,"y":[{"c":2,"d":1}]},"zeta":1},"driver":"sorter"}',
    );
  });

  it('skips a result Go could not decode (a field of another type) and goes on with the next one', async () => {
    const created = JSON.parse(
      (
        await postJson('/resources', {
          name: 'undecodable-result',
          resource: 'fidelity',
          pipeline: 'fidelity-pipeline',
          spec: {},
        })
      ).body,
    );
    const stored = JSON.parse((await raw('GET', '/resources/fidelity/undecodable-result')).body);
    const event = (result: string) =>
      `{"event":"driver.result","run_id":"${created.runid}","resource":${JSON.stringify(stored)},"driverresult":${result}}`;
    const js = suite.nc.jetstream();
    await js.publish(
      'pipelines.driver.result',
      event('{"success":"yes","message":"","data":null,"driver":"sorter"}'),
    );
    await js.publish(
      'pipelines.driver.result',
      event('{"success":true,"message":"second","data":null,"driver":"sorter"}'),
    );
    await eventually(async () => {
      const { metadata } = JSON.parse((await raw('GET', '/resources/fidelity/undecodable-result')).body);
      return (
        metadata['driverresults.sorter'] ===
        '{"success":true,"message":"second","data":null,"driver":"sorter"}'
      );
    }, 'the second, decodable result');
  });

  it('answers GET /logs in the store key order (pipeline|driver|runid|timestamp), Go lines and ours mixed', async () => {
    const runid = 'c0ffee00-0000-4000-8000-000000000001';
    const js = suite.nc.jetstream();
    const lines = [
      // Ours: the pipeline named, RFC 3339 timestamps.
      `{"runid":"${runid}","driver":"ts-driver","pipeline":"p","timestamp":"2026-12-07T10:00:00.000000001Z","message":"ts 1"}`,
      `{"runid":"${runid}","driver":"ts-driver","pipeline":"p","timestamp":"2026-12-07T10:00:00.000000002Z","message":"ts 2"}`,
      // The Go runtime's: pipeline "", unix seconds; its keys in another order and an unknown field,
      // which the server's struct decoding drops.
      `{"message":"go 2","timestamp":"1765101601","pipeline":"","driver":"go-driver","runid":"${runid}","level":"info"}`,
      `{"runid":"${runid}","driver":"go-driver","pipeline":"","timestamp":"1765101600","message":"go 1"}`,
      // Byte order, not UTF-16 order: U+FF61 (EF BD A1) sorts before U+1F600 (F0 9F 98 80) in BadgerDB.
      `{"runid":"${runid}","driver":"\u{1F600}","pipeline":"p","timestamp":"1","message":"emoji"}`,
      `{"runid":"${runid}","driver":"\uFF61","pipeline":"p","timestamp":"1","message":"halfwidth"}`,
    ];
    for (const line of lines) await js.publish(`logs.${runid}`, line);
    let answer: RawAnswer = { status: 0, headers: {}, body: '[]' };
    await eventually(async () => {
      answer = await raw('GET', `/logs?runid=${runid}`);
      return JSON.parse(answer.body).length === lines.length;
    }, 'the stored lines');
    // BadgerDB compares key bytes: "p|ts-driver|…" < "|go-driver|…" because 'p' (0x70) < '|' (0x7C),
    // so Go's lines (pipeline "") come after ours for any pipeline name starting below '|'.
    expect(JSON.parse(answer.body).map((log: { message: string }) => log.message)).toEqual([
      'ts 1',
      'ts 2',
      'halfwidth',
      'emoji',
      'go 1',
      'go 2',
    ]);
    expect(answer.body).toContain(
      `{"runid":"${runid}","driver":"go-driver","pipeline":"","timestamp":"1765101601","message":"go 2"}`,
    );
  });
});
