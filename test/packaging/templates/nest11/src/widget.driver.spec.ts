import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Injectable } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { ConveyorClient, Reconcile, Resource } from '@conveyor-ci/nestjs';
import { ConveyorTestingModule, makeResource } from '@conveyor-ci/testing';
import { AppModule } from './app.module';
import { WidgetDriver } from './widget.driver';

@Injectable()
class Painter {
  paint(name: string): string {
    return `painted ${name}`;
  }
}

@Controller()
class GadgetDriver {
  constructor(private readonly painter: Painter) {}

  @Reconcile({ resource: 'gadget' })
  reconcile(@Payload() resource: Resource) {
    return { success: true, message: this.painter.paint(resource.name) };
  }
}

// The app's module loads under jest too: every entry point it imports (the root, /health, /metrics)
// is CommonJS all the way down, or jest fails with "Unexpected token 'export'".
it('loads the app module', () => {
  expect(AppModule).toBeDefined();
});

// The client loads @nestjs/axios on its first request: it must be the CommonJS major (4) here.
it('calls the Conveyor API', async () => {
  const server = createServer((_req, res) => res.end('Conveyor CI API'));
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  try {
    const client = new ConveyorClient({ apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    await expect(client.serverInfo()).resolves.toBe('Conveyor CI API');
  } finally {
    server.close();
  }
});

describe('WidgetDriver', () => {
  let testing: ConveyorTestingModule;

  beforeAll(async () => {
    testing = await ConveyorTestingModule.create({ options: { driverName: 'widgets' }, controllers: [WidgetDriver] });
  });
  afterAll(() => testing.close());

  it('builds the widget and acks', async () => {
    const run = await testing.reconcile(makeResource({ name: 'w', resource: 'widget', spec: {} }));
    expect(run.result?.driverresult).toMatchObject({ success: true, message: 'built w', driver: 'widgets' });
    expect(run.verb).toEqual({ verb: 'ack' });
  });
});

describe('GadgetDriver with a fake Painter', () => {
  it('uses the provider overridden on the builder', async () => {
    const testing = await ConveyorTestingModule.builder({ controllers: [GadgetDriver], providers: [Painter] })
      .overrideProvider(Painter)
      .useValue({ paint: (name: string) => `faked ${name}` })
      .compile();
    try {
      const run = await testing.reconcile(makeResource({ name: 'g', resource: 'gadget', spec: {} }));
      expect(run.result?.driverresult.message).toBe('faked g');
    } finally {
      await testing.close();
    }
  });
});
