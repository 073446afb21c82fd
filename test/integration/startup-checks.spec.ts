import { Controller } from '@nestjs/common';
import { Reconcile } from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { startDriverApp, uniqueDriverName, useDriverApps } from '../support/driver-app';

const suite = useDriverApps();
const { closeAfterTest } = suite;

@Controller()
class MinimalDriver {
  @Reconcile({ resource: 'minimal' })
  reconcile() {
    return { success: true };
  }
}

describe('startup: configuration and attachment', () => {
  it('fails startup when @Reconcile handlers exist but the transport was never attached', async () => {
    const { NestFactory } = await import('@nestjs/core');
    const { Module } = await import('@nestjs/common');
    const { ConveyorModule } = await import('@conveyor-ci/nestjs');
    @Module({
      imports: [ConveyorModule.forRoot({ driverName: uniqueDriverName(), servers: suite.env.url })],
      controllers: [MinimalDriver],
    })
    class Forgetful {}
    const app = await NestFactory.create(Forgetful, { logger: false, abortOnError: false });
    await expect(app.init()).rejects.toThrow(/never attached: call `await connectConveyor\(app\)`/);
    await app.close().catch(() => undefined);
  });

  it('configures through forRootAsync with an injected factory', async () => {
    const { NestFactory } = await import('@nestjs/core');
    const { Injectable, Module } = await import('@nestjs/common');
    const { ConveyorModule, connectConveyor } = await import('@conveyor-ci/nestjs');
    const name = uniqueDriverName('async');
    @Injectable()
    class Settings {
      readonly natsUrl = suite.env.url;
    }
    @Module({ providers: [Settings], exports: [Settings] })
    class SettingsModule {}
    @Module({
      imports: [
        ConveyorModule.forRootAsync({
          imports: [SettingsModule],
          inject: [Settings],
          useFactory: async (settings: Settings) => ({
            driverName: name,
            servers: settings.natsUrl,
            maxAckPending: 5,
          }),
        }),
      ],
      controllers: [MinimalDriver],
    })
    class AsyncApp {}
    const app = await NestFactory.create(AsyncApp, { logger: false, abortOnError: false });
    closeAfterTest(() => app.close());
    await (await connectConveyor(app)).whenConsuming();
    expect((await suite.env.jsm.consumers.info(MESSAGES_STREAM, name)).config.max_ack_pending).toBe(5);
  });

  it('fails startup with every invalid option named', async () => {
    await expect(
      startDriverApp({
        options: { driverName: 'bad.name', servers: suite.env.url, concurrency: 0 },
        controllers: [MinimalDriver],
      }),
    ).rejects.toThrow(
      /option "driverName" \(env CONVEYOR_DRIVER_NAME\): must be a non-empty name[\s\S]*option "concurrency" \(env CONVEYOR_CONCURRENCY\): must be a whole number >= 1/,
    );
  });
});
