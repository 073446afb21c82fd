import type { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { ConveyorConfig } from '../module/conveyor.options';
import { ConveyorStrategy } from '../transport/conveyor.strategy';
import { ConveyorHealthIndicators } from './conveyor.health';

describe('ConveyorHealthIndicators.nats', () => {
  afterEach(() => jest.useRealTimers());

  function indicatorsWith(rtt: () => Promise<number>): ConveyorHealthIndicators {
    const nc = { isClosed: () => false, rtt };
    const strategy = {
      natsStatus: { server: 'nats://127.0.0.1:4222', connected: true },
      unwrap: () => nc,
    } as unknown as ConveyorStrategy;
    const config = { redactor: { redact: (text: string) => text } } as unknown as ConveyorConfig;
    const moduleRef = {
      get: (token: unknown) => (token === ConveyorStrategy ? strategy : config),
    } as unknown as ModuleRef;
    return new ConveyorHealthIndicators(new HealthIndicatorService(), moduleRef, {});
  }

  it('answers up with the round trip', async () => {
    const indicators = indicatorsWith(() => Promise.resolve(3));
    await expect(indicators.nats()).resolves.toEqual({
      nats: { status: 'up', server: 'nats://127.0.0.1:4222', rttMs: 3 },
    });
    indicators.onModuleDestroy();
  });

  it('answers down, naming what timed out, when the round trip never comes back', async () => {
    jest.useFakeTimers();
    const indicators = indicatorsWith(() => new Promise<number>(() => undefined));
    const probe = indicators.nats();
    await jest.advanceTimersByTimeAsync(2000);
    await expect(probe).resolves.toEqual({
      nats: { status: 'down', server: 'nats://127.0.0.1:4222', message: 'NATS rtt timed out after 2000 ms' },
    });
    indicators.onModuleDestroy();
  });
});
