import { Test } from '@nestjs/testing';
import { ConveyorApiServer } from '@conveyor-ci/testing';
import { ConveyorConfigError } from '../module/conveyor.options';
import { ConveyorClientModule } from './conveyor-client.module';
import { ConveyorClient } from './conveyor.client';

describe('ConveyorClientModule', () => {
  let api: ConveyorApiServer;
  beforeAll(async () => {
    api = await ConveyorApiServer.start();
  });
  afterAll(() => api.close());

  it('provides a ConveyorClient for apps that only call the API', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConveyorClientModule.forRoot({ apiUrl: api.url, retries: 0 })],
    }).compile();
    const client = moduleRef.get(ConveyorClient);
    expect(client.config).toMatchObject({ apiUrl: api.url, retries: 0 });
    const stored = api.put({ name: 'm1', resource: 'pipeline', spec: {} });
    expect(await client.getResource('pipeline', 'm1')).toEqual(stored);
    await moduleRef.close();
  });

  it('takes async options, and fails startup with every bad option listed', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConveyorClientModule.forRootAsync({ useFactory: async () => ({ apiUrl: api.url }) })],
    }).compile();
    expect(moduleRef.get(ConveyorClient).apiUrl).toBe(api.url);
    await moduleRef.close();
    const bad = Test.createTestingModule({
      imports: [ConveyorClientModule.forRoot({ apiUrl: 'ftp://x', timeoutMs: 0 })],
    }).compile();
    await expect(bad).rejects.toThrow(ConveyorConfigError);
    await expect(bad).rejects.toThrow(
      /option "client.timeoutMs" \(env CONVEYOR_API_TIMEOUT_MS\): must be a whole number >= 1 and <= 2147483647 .*, got 0/,
    );
  });
});
