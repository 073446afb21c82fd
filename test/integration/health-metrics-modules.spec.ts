import { Controller, Get, INestApplication, Injectable, Module, ModuleMetadata } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Payload } from '@nestjs/microservices';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { Registry, register as globalRegistry } from 'prom-client';
import { ConveyorModule, Reconcile, Resource, connectConveyor } from '@conveyor-ci/nestjs';
import { ConveyorHealthIndicator, ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { ConveyorMetricsModule } from '@conveyor-ci/nestjs/metrics';
import { eventually, makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { sample, samples } from '../support/prometheus';

/**
 * The health and metrics modules shaped like the ecosystem's (issue 27): forRoot/forRootAsync with
 * `path` and `isGlobal`, working beside a non-global ConveyorModule, beside an app's own
 * PrometheusModule and Terminus controller, and in an app started twice in one process.
 */
const suite = useDriverApps();

@Controller()
class ShapedDriver {
  @Reconcile({ resource: 'shaped' })
  run(@Payload() resource: Resource) {
    return { success: true, message: `done ${resource.name}` };
  }
}

/** Starts an app from `imports`, attaches the transport, listens on a free port; closed after the test. */
async function startApp(imports: ModuleMetadata['imports'], controllers: ModuleMetadata['controllers'] = []) {
  @Module({ imports, controllers: [ShapedDriver, ...(controllers ?? [])] })
  class ShapedApp {}
  const app: INestApplication = await NestFactory.create(ShapedApp, {
    logger: ['error', 'warn'],
    abortOnError: false,
  });
  suite.closeAfterTest(() => app.close());
  const strategy = await connectConveyor(app);
  await strategy.whenConsuming();
  await app.listen(0, '127.0.0.1');
  return { app, url: await app.getUrl() };
}

async function reconcileOne(name: string): Promise<void> {
  const sent = await publishDriverMessage(suite.env.js, {
    resource: makeResource({ name: `r-${name}`, resource: 'shaped', spec: {} }),
  });
  const result = await suite.env.results.waitForRun(sent.message.run_id);
  expect(result.driverresult.success).toBe(true);
}

const SETTINGS = Symbol('SETTINGS');
@Module({
  providers: [{ provide: SETTINGS, useValue: { registry: new Registry(), probeTimeoutMs: 1500 } }],
  exports: [SETTINGS],
})
class SettingsModule {}

describe('ConveyorHealthModule and ConveyorMetricsModule', () => {
  it('work beside ConveyorModule.forRoot({ isGlobal: false }), under their own paths, from forRoot and forRootAsync', async () => {
    const name = uniqueDriverName('shape');
    const { url } = await startApp([
      ConveyorModule.forRoot({ driverName: name, servers: suite.env.url, isGlobal: false }),
      ConveyorHealthModule.forRoot({ path: 'probes' }),
      ConveyorMetricsModule.forRootAsync({
        path: 'prom',
        imports: [SettingsModule],
        inject: [SETTINGS],
        useFactory: (settings: { registry: Registry }) => ({
          registry: settings.registry,
          defaultMetrics: false,
        }),
      }),
    ]);
    await reconcileOne(name);

    for (const probe of ['probes', 'probes/ready', 'probes/live']) {
      expect((await fetch(`${url}/${probe}`)).status).toBe(200);
    }
    expect(await (await fetch(`${url}/probes/ready`)).json()).toMatchObject({
      status: 'ok',
      details: { nats: { status: 'up' }, consumer: { status: 'up', name } },
    });
    const series = `conveyor_runs_finished_total{resource="shaped",result="succeeded"}`;
    await eventually(
      async () => sample(await (await fetch(`${url}/prom`)).text(), series) === 1,
      'the run counted',
    );
    const text = await (await fetch(`${url}/prom`)).text();
    expect(sample(text, 'conveyor_run_duration_seconds_count{resource="shaped",result="succeeded"}')).toBe(1);
    expect(sample(text, 'conveyor_messages_settled_total{result="succeeded",action="ack"}')).toBe(1);
    expect(samples(text, 'process_cpu_user_seconds_total')).toEqual([]);
    // Nothing at the defaults' paths: both moved.
    expect((await fetch(`${url}/health`)).status).toBe(404);
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
  });

  it('join an app that already has PrometheusModule.register() and its own Terminus controller, and an app started again in the same process', async () => {
    @Injectable()
    @Controller('health')
    class AppHealthController {
      constructor(
        private readonly health: HealthCheckService,
        private readonly conveyor: ConveyorHealthIndicator,
      ) {}

      @Get()
      @HealthCheck()
      check() {
        return this.health.check([() => this.conveyor.isHealthy('conveyor')]);
      }

      @Get('live')
      @HealthCheck()
      live() {
        return this.health.check([() => this.conveyor.isAlive()]);
      }
    }
    @Module({
      imports: [
        TerminusModule,
        ConveyorHealthModule.forRootAsync({
          path: false,
          imports: [SettingsModule],
          inject: [SETTINGS],
          useFactory: (settings: { probeTimeoutMs: number }) => ({ probeTimeoutMs: settings.probeTimeoutMs }),
        }),
      ],
      controllers: [AppHealthController],
    })
    class AppHealthModule {}

    const name = uniqueDriverName('existing');
    const { app, url } = await startApp([
      PrometheusModule.register(),
      ConveyorModule.forRoot({ driverName: name, servers: suite.env.url }),
      AppHealthModule,
      ConveyorMetricsModule.forRoot({ path: false }),
    ]);
    await reconcileOne(name);

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'ok',
      info: {
        conveyor: { status: 'up', nats: { status: 'up' }, consumer: { status: 'up', name } },
      },
    });
    expect(await (await fetch(`${url}/health/live`)).json()).toMatchObject({
      info: { event_loop: { status: 'up' } },
    });
    // PrometheusModule's own /metrics shows the Conveyor metrics, and prom-client's process metrics once.
    const series = `conveyor_runs_finished_total{resource="shaped",result="succeeded"}`;
    await eventually(
      async () => sample(await (await fetch(`${url}/metrics`)).text(), series) === 1,
      'the run counted',
    );
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text.match(/^# TYPE process_cpu_user_seconds_total /gm)).toHaveLength(1);
    expect(text.match(/^# TYPE conveyor_runs_started_total /gm)).toHaveLength(1);

    // The same process starts another app on the global registry (tests, a restart in place): the
    // first one's metrics left with it, and the process metrics are not registered twice.
    await app.close();
    expect(globalRegistry.getSingleMetric('conveyor_runs_started_total')).toBeUndefined();
    const again = uniqueDriverName('again');
    const second = await startApp([
      ConveyorModule.forRoot({ driverName: again, servers: suite.env.url }),
      ConveyorHealthModule,
      ConveyorMetricsModule.forRoot(),
    ]);
    expect((await fetch(`${second.url}/health/ready`)).status).toBe(200);
    const secondText = await (await fetch(`${second.url}/metrics`)).text();
    expect(secondText.match(/^# TYPE process_cpu_user_seconds_total /gm)).toHaveLength(1);
    expect(secondText.match(/^# TYPE conveyor_runs_started_total /gm)).toHaveLength(1);
  });

  it('stop startup with a message naming the fix when ConveyorModule is missing', async () => {
    @Module({ imports: [ConveyorHealthModule.forRoot()] })
    class NoRuntime {}
    const app = await NestFactory.create(NoRuntime, { logger: false, abortOnError: false });
    suite.closeAfterTest(() => app.close());
    await expect(app.init()).rejects.toThrow(
      'ConveyorHealthModule needs the driver runtime: import ConveyorModule.forRoot() or forRootAsync() in the app.',
    );
  });
});
