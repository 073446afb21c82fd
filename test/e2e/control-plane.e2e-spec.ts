import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { connect, NatsConnection } from 'nats';
import { Reconcile, ReconcileContext, Resource } from '@conveyor-ci/nestjs';
import {
  ConveyorControlPlane,
  DriverProcess,
  ResultCollector,
  eventually,
  freePort,
  readEventStream,
  waitForConsumer,
} from '@conveyor-ci/testing';
import { encodeGoJson } from '../../libs/conveyor/src/protocol';
import { startDriverApp } from '../support/driver-app';
import { REFERENCE_DRIVER_ENTRY } from '../support/reference-driver';

/**
 * Against the local control plane, or a real Conveyor when CONVEYOR_E2E_API_URL and
 * CONVEYOR_E2E_NATS_URL are set.
 */
const external = process.env.CONVEYOR_E2E_API_URL && process.env.CONVEYOR_E2E_NATS_URL;
let plane: ConveyorControlPlane | undefined;
let apiUrl: string;
let natsUrl: string;
let nc: NatsConnection;
let results: ResultCollector;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  if (external) {
    [apiUrl, natsUrl] = [process.env.CONVEYOR_E2E_API_URL!, process.env.CONVEYOR_E2E_NATS_URL!];
  } else {
    plane = await ConveyorControlPlane.start();
    [apiUrl, natsUrl] = [plane.apiUrl, plane.natsUrl];
  }
  nc = await connect({ servers: natsUrl, maxReconnectAttempts: -1 });
  results = new ResultCollector(nc);
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  results.close();
  await nc.close();
  await plane?.stop();
});

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${apiUrl}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* plain text */
  }
  return { status: response.status, body: parsed };
}

/** `data:` payloads of an SSE stream, as they arrive. */
function sse(path: string): { lines: string[]; close: () => void } {
  const abort = new AbortController();
  const lines: string[] = [];
  void readEventStream(`${apiUrl}${path}`, (data) => lines.push(data), abort.signal);
  return { lines, close: () => abort.abort() };
}

@Controller()
class NotifierDriver {
  static payloads: string[] = [];
  static runs: string[] = [];
  @Reconcile({ resource: 'pipeline' })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    NotifierDriver.payloads.push(ctx.payload);
    NotifierDriver.runs.push(ctx.runId);
    ctx.logger.info(`notifying about ${resource.name}`);
    ctx.logger.info('notified');
    return { success: true, message: 'notified', data: { channel: '#builds' } };
  }
}

describe('local control plane with the reference driver and a second driver', () => {
  beforeAll(async () => {
    const shell = new DriverProcess(REFERENCE_DRIVER_ENTRY, {
      CONVEYOR_NATS_URL: natsUrl,
      CONVEYOR_API_URL: apiUrl,
      CONVEYOR_DRIVER_NAME: 'shell-runner',
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
    });
    closers.push(() => shell.stop('SIGTERM'));
    const notifier = await startDriverApp({
      options: { driverName: 'notifier', servers: natsUrl },
      controllers: [NotifierDriver],
    });
    closers.push(() => notifier.app.close());
    const jsm = await nc.jetstreamManager();
    await waitForConsumer(jsm, 'shell-runner');
    await waitForConsumer(jsm, 'notifier');
    expect(
      (
        await api('POST', '/resource-definitions/apply', {
          name: 'pipeline',
          version: '0.0.1',
          schema: { type: 'object', properties: { steps: { type: 'array' } }, required: ['steps'] },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await api('POST', '/pipelines/', {
          name: 'two-step',
          resource: 'pipeline',
          steps: [
            { name: 'build', driver: 'shell-runner' },
            { name: 'notify', driver: 'notifier' },
          ],
        })
      ).status,
    ).toBe(201);
  });

  it('runs a two-step pipeline to completion, storing both results and both drivers’ logs', async () => {
    const created = await api('POST', '/resources/', {
      name: 'app-1',
      resource: 'pipeline',
      pipeline: 'two-step',
      spec: { steps: [{ name: 'build', run: 'echo "compiling <app> & linking"; echo done' }] },
    });
    expect(created).toEqual({
      status: 201,
      body: {
        name: 'app-1',
        runid: expect.any(String),
        message: 'Resource created successfully',
        version: '1',
      },
    });
    const runId = created.body.runid as string;
    await eventually(() => results.forRun(runId).length === 2, 'both steps’ results', 30_000);
    expect(results.forRun(runId).map((r) => [r.driverresult.driver, r.driverresult.success])).toEqual([
      ['shell-runner', true],
      ['notifier', true],
    ]);

    // The engine stores each result as a Go-encoded JSON string under driverresults.<driver>.
    const stored = await eventually(
      async () =>
        Object.keys((await api('GET', '/resources/pipeline/app-1')).body.metadata ?? {}).length === 3,
      'both results on the resource',
    ).then(() => api('GET', '/resources/pipeline/app-1'));
    const notifierResult = results.forRun(runId)[1].driverresult;
    expect(stored.body.metadata['driverresults.notifier']).toBe(encodeGoJson(notifierResult));
    expect(JSON.parse(stored.body.metadata['driverresults.shell-runner'])).toMatchObject({
      success: true,
      driver: 'shell-runner',
    });
    // The second step got the updated resource as a string payload: the first result inside it.
    const payload = NotifierDriver.payloads.at(-1)!;
    expect(JSON.parse(payload).metadata['driverresults.shell-runner']).toBe(
      stored.body.metadata['driverresults.shell-runner'],
    );

    await eventually(
      async () => ((await api('GET', `/logs?runid=${runId}`)).body as unknown[]).length >= 6,
      'the stored logs',
    );
    const logs = (await api('GET', `/logs?runid=${runId}`)).body as { driver: string; message: string }[];
    const of = (driver: string) => logs.filter((l) => l.driver === driver).map((l) => l.message);
    expect(of('notifier')).toEqual(['notifying about app-1', 'notified']);
    expect(of('shell-runner')).toEqual(expect.arrayContaining(['compiling <app> & linking', 'done']));
    const shellLines = of('shell-runner');
    expect(shellLines.indexOf('compiling <app> & linking')).toBeLessThan(shellLines.indexOf('done'));
  });

  it('streams a run’s logs over SSE: stored lines replayed, then live lines, each once', async () => {
    const created = await api('POST', '/resources/', {
      name: 'app-2',
      resource: 'pipeline',
      pipeline: 'two-step',
      spec: { steps: [{ name: 'slow', run: 'echo early; sleep 1.5; echo late' }] },
    });
    const runId = created.body.runid as string;
    await eventually(
      async () =>
        ((await api('GET', `/logs?runid=${runId}&driver=shell-runner`)).body as { message: string }[]).some(
          (l) => l.message === 'early',
        ),
      'the early line stored',
    );
    const stream = sse(`/logs/streams/shell-runner/${runId}`);
    closers.push(async () => stream.close());
    await eventually(
      () => stream.lines.some((l) => JSON.parse(l).message === 'late'),
      'the live line',
      20_000,
    );
    const messages = stream.lines.map((l) => JSON.parse(l).message as string);
    expect(messages.indexOf('early')).toBeLessThan(messages.indexOf('late'));
    expect(messages.filter((m) => m === 'early' || m === 'late')).toEqual(['early', 'late']);
    stream.close();
  });

  it('stops a pipeline at a failing step: the next driver is never called', async () => {
    const created = await api('POST', '/resources/', {
      name: 'app-3',
      resource: 'pipeline',
      pipeline: 'two-step',
      spec: { steps: [{ name: 'broken', run: 'exit 7' }] },
    });
    const runId = created.body.runid as string;
    await eventually(() => results.forRun(runId).length === 1, 'the failing result', 20_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(results.forRun(runId).map((r) => r.driverresult.success)).toEqual([false]);
    expect(NotifierDriver.runs).not.toContain(runId);
  });
});
