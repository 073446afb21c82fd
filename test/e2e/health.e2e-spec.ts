import { connect } from 'nats';
import {
  DriverProcess,
  NatsServer,
  ResultCollector,
  createConveyorStreams,
  eventually,
  freePort,
  makeResource,
  publishDriverMessage,
  waitForConsumer,
} from '@conveyor-ci/testing';
import { sample } from '../support/prometheus';
import { REFERENCE_DRIVER_ENTRY } from '../support/reference-driver';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function status(url: string): Promise<{ code: number; body: Record<string, any> }> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return { code: response.status, body: (await response.json()) as Record<string, any> };
  } catch {
    return { code: 0, body: {} };
  }
}

describe('reference driver probes (built, as a child process)', () => {
  it('/health/ready follows the consumer and NATS, Loki never fails it, and /health/live stays up while draining', async () => {
    const natsPort = await freePort();
    const httpPort = await freePort();
    const closedLokiPort = await freePort();
    const name = `health-${process.pid}`;
    const base = `http://127.0.0.1:${httpPort}`;
    const driver = new DriverProcess(REFERENCE_DRIVER_ENTRY, {
      CONVEYOR_NATS_URL: `nats://127.0.0.1:${natsPort}`,
      CONVEYOR_DRIVER_NAME: name,
      PORT: String(httpPort),
      HOST: '127.0.0.1',
      LOKI_URL: `http://127.0.0.1:${closedLokiPort}`,
    });
    closers.push(() => driver.stop('SIGKILL'));

    // HTTP is up before NATS exists; readiness says no.
    await eventually(async () => (await status(`${base}/health/live`)).code === 200, 'liveness');
    const early = await status(`${base}/health/ready`);
    expect(early.code).toBe(503);
    expect(early.body.error.consumer).toMatchObject({ status: 'down', state: 'connecting' });

    const nats = await NatsServer.start({ port: natsPort });
    closers.push(() => nats.stop());
    const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    closers.push(() => nc.close());
    const jsm = await nc.jetstreamManager();
    await createConveyorStreams(jsm);
    await waitForConsumer(jsm, name);
    await eventually(async () => (await status(`${base}/health/ready`)).code === 200, 'ready once consuming');
    const ready = await status(`${base}/health/ready`);
    // Loki is unreachable: reported down in the body, without failing readiness.
    expect(ready.body).toMatchObject({
      status: 'ok',
      details: { nats: { status: 'up' }, consumer: { status: 'up' }, loki: { status: 'down' } },
    });

    await nats.halt('SIGTERM');
    await eventually(
      async () => (await status(`${base}/health/ready`)).code === 503,
      'not ready without NATS',
    );
    expect((await status(`${base}/health/live`)).code).toBe(200);
    await nats.restart();
    await eventually(
      async () => (await status(`${base}/health/ready`)).code === 200,
      'ready after NATS restarts',
      30_000,
    );

    // Metrics: the deltas of three runs, one failing, are exact.
    const before = await (await fetch(`${base}/metrics`)).text();
    const results = new ResultCollector(nc);
    closers.push(async () => results.close());
    for (const [i, run] of ['true', 'exit 1', 'true'].entries()) {
      await publishDriverMessage(nc.jetstream(), {
        driver: name,
        resource: makeResource({
          name: `m${i}`,
          resource: 'pipeline',
          spec: { steps: [{ name: 's', run }] },
        }),
      });
    }
    await results.waitFor(3);
    // A run is counted finished at its ack, just after its result is out.
    const finished = (text: string) =>
      ['succeeded', 'failed'].reduce(
        (n, outcome) =>
          n + sample(text, `conveyor_runs_finished_total{resource="pipeline",result="${outcome}"}`),
        0,
      );
    let after = '';
    await eventually(async () => {
      after = await (await fetch(`${base}/metrics`)).text();
      return finished(after) - finished(before) === 3;
    }, 'three finished runs');
    const delta = (metric: string) => sample(after, metric) - sample(before, metric);
    expect(delta('conveyor_runs_finished_total{resource="pipeline",result="succeeded"}')).toBe(2);
    expect(delta('conveyor_runs_finished_total{resource="pipeline",result="failed"}')).toBe(1);
    expect(delta('conveyor_run_duration_seconds_count{resource="pipeline",result="succeeded"}')).toBe(2);
    expect(delta('conveyor_messages_settled_total{result="failed",action="ack"}')).toBe(1);
    for (const r of results.results) expect(after).not.toContain(r.event.run_id);

    await publishDriverMessage(nc.jetstream(), {
      driver: name,
      resource: makeResource({
        name: 'slow',
        resource: 'pipeline',
        spec: { steps: [{ name: 'work', run: 'sleep 3' }] },
      }),
    });
    await driver.waitForLine((l) => l.json?.msg === 'step work: starting');
    const exited = driver.stop('SIGTERM');
    await eventually(
      async () => (await status(`${base}/health/ready`)).code === 503,
      'not ready while draining',
    );
    expect((await status(`${base}/health/live`)).code).toBe(200);
    expect(await exited).toEqual({ code: 0, signal: null });
  });
});
