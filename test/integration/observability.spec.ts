import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { Reconcile, ReconcileContext, Resource } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { ConveyorMetricsModule } from '@conveyor-ci/nestjs/metrics';
import { LokiServer, eventually, makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { samples } from '../support/prometheus';

const suite = useDriverApps();
const { start, closeAfterTest } = suite;

const exporter = new InMemorySpanExporter();
beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
  );
});
afterAll(() => {
  trace.disable();
  context.disable();
});

@Controller()
class ObservedDriver {
  @Reconcile({ resource: 'observed' })
  run(@Payload() resource: Resource<{ fail?: boolean }>, @Ctx() ctx: ReconcileContext) {
    ctx.logger.info(`working on ${resource.name}`);
    if (resource.spec.fail) throw new Error('it broke');
    return { success: true };
  }
}

describe('metrics and tracing', () => {
  it('counts N runs exactly, observes N durations, keeps run ids out of labels, and traces each run', async () => {
    const loki = await LokiServer.start();
    closeAfterTest(() => loki.close());
    const name = uniqueDriverName();
    const { app } = await start(name, [ObservedDriver], {
      imports: [
        ConveyorHealthModule,
        ConveyorMetricsModule.register({ registry: new Registry(), defaultMetrics: false }),
      ],
      options: { driverName: name, servers: suite.env.url, loki: { url: loki.url, batchIntervalMs: 50 } },
    });
    await app.listen(0, '127.0.0.1');
    const url = await app.getUrl();
    const fails = [false, true, false, true, false];
    const sent = [];
    for (const [i, fail] of fails.entries()) {
      sent.push(
        await publishDriverMessage(suite.env.js, {
          resource: makeResource({ name: `o${i}`, resource: 'observed', spec: { fail } }),
        }),
      );
    }
    for (const s of sent) await suite.env.results.waitForRun(s.message.run_id);
    // A run is counted finished at its ack, just after its result is out.
    let text = '';
    await eventually(async () => {
      text = await (await fetch(`${url}/metrics`)).text();
      return samples(text, 'conveyor_runs_finished_total').reduce((n, s) => n + s.value, 0) === 5;
    }, 'five finished runs');

    expect(samples(text, 'conveyor_runs_started_total')).toEqual([
      { labels: '{resource="observed"}', value: 5 },
    ]);
    expect(samples(text, 'conveyor_runs_finished_total')).toEqual(
      expect.arrayContaining([
        { labels: '{resource="observed",result="succeeded"}', value: 3 },
        { labels: '{resource="observed",result="failed"}', value: 2 },
      ]),
    );
    const counts = samples(text, 'conveyor_run_duration_seconds_count');
    expect(counts.reduce((n, s) => n + s.value, 0)).toBe(5);
    expect(samples(text, 'conveyor_messages_settled_total')).toEqual(
      expect.arrayContaining([
        { labels: '{result="succeeded",action="ack"}', value: 3 },
        { labels: '{result="failed",action="ack"}', value: 2 },
      ]),
    );
    expect(samples(text, 'conveyor_runs_in_flight')).toEqual([{ labels: '', value: 0 }]);
    // One line per run, and each failed run's log ends with why.
    expect(samples(text, 'conveyor_log_lines_total')).toContainEqual({
      labels: '{kind="shipped"}',
      value: 7,
    });
    expect(samples(text, 'conveyor_log_sink_lines_total')).toContainEqual({
      labels: '{sink="conveyor",result="sent",reason=""}',
      value: 7,
    });
    for (const s of sent) {
      expect(text).not.toContain(s.message.run_id);
      expect(text).not.toContain(s.message.id);
    }

    const spans = exporter.getFinishedSpans().filter((s) => s.attributes['conveyor.driver'] === name);
    expect(spans.map((s) => s.attributes['conveyor.run_id']).sort()).toEqual(
      sent.map((s) => s.message.run_id).sort(),
    );
    expect(spans[1].attributes).toMatchObject({
      'conveyor.resource_type': 'observed',
      'conveyor.event': 'create',
      'conveyor.delivery_count': 1,
      'conveyor.outcome': 'failed',
    });
    // Log lines carry the trace of their run.
    await eventually(() => loki.entries({ driver: name }).length === 7, 'the log lines in Loki');
    for (const entry of loki.entries({ driver: name })) {
      const span = spans.find((s) => s.attributes['conveyor.run_id'] === entry.metadata?.run_id)!;
      expect(entry.metadata?.trace_id).toBe(span.spanContext().traceId);
    }

    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: 'ok',
      details: { nats: { status: 'up' }, consumer: { status: 'up' }, loki: { status: 'up' } },
    });
  });
});
