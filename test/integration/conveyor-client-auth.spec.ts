import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConveyorApiError, ConveyorClient, Reconcile, ReconcileContext, Resource } from '@conveyor-ci/nestjs';
import {
  ConveyorControlPlane,
  ResultCollector,
  TestPki,
  createTestPki,
  waitForConsumer,
} from '@conveyor-ci/testing';
import { startDriverApp, uniqueDriverName } from '../support/driver-app';

/**
 * The client on a control plane with `api.auth_enabled: true` (contract §10.4): every call, the
 * stale-event guard's and a handler's included, carries a PoP JWT made from the driver's certificate.
 */
const dir = mkdtempSync(join(tmpdir(), 'client-auth-'));
let pki: TestPki;
let plane: ConveyorControlPlane;

beforeAll(async () => {
  pki = createTestPki(join(dir, 'pki'), 'client-auth-driver');
  plane = await ConveyorControlPlane.start({ auth: pki });
});
afterAll(async () => {
  await plane?.stop();
  rmSync(dir, { recursive: true, force: true });
});

@Controller()
class LookupDriver {
  constructor(private readonly client: ConveyorClient) {}

  @Reconcile({ resource: 'secured' })
  async run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    const again = await this.client.getResource('secured', resource.name, { signal: ctx.signal });
    return { success: again?.name === resource.name, message: `read ${again?.name} back through the API` };
  }
}

it('signs every call: definitions, pipelines, resources, a handler lookup and the stale-event guard', async () => {
  const name = uniqueDriverName('secured');
  const { app } = await startDriverApp({
    options: {
      driverName: name,
      servers: plane.natsUrl,
      apiUrl: plane.apiUrl,
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      apiAuth: { enabled: true },
      staleEventGuard: true,
    },
    controllers: [LookupDriver],
  });
  try {
    await waitForConsumer(plane.jsm, name, { timeoutMs: 20_000 });
    const results = new ResultCollector(plane.nc);
    await plane.nc.flush();
    const client = app.get(ConveyorClient);
    await client.createOrUpdateResourceDefinition({
      name: 'secured',
      version: '1',
      schema: { type: 'object' },
    });
    await client.createPipeline({
      name: 'secured-pipe',
      resource: 'secured',
      steps: [{ name: 'look', driver: name }],
    });
    const { runid } = await client.createResource({
      name: 'r-1',
      resource: 'secured',
      pipeline: 'secured-pipe',
      spec: {},
    });
    const result = await results.waitForRun(runid, 20_000);
    results.close();
    expect(result.driverresult).toMatchObject({ success: true, message: 'read r-1 back through the API' });
    await client.deleteResource('secured', 'r-1');

    const unsigned = new ConveyorClient({ apiUrl: plane.apiUrl, retries: 0 });
    const refused = await unsigned.getResource('secured', 'r-1').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConveyorApiError);
    expect((refused as ConveyorApiError).status).toBe(401);
  } finally {
    await app.close();
  }
});
