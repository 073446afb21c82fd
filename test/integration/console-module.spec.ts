import { Controller, INestApplication } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { ConveyorConsoleModule, Reconcile, ReconcileContext, Resource } from '@conveyor-ci/nestjs';
import { makeResource, publishDriverMessage, sleep } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';

/**
 * The console mounted in a driver app (`ConveyorConsoleModule`): off unless enabled, served at its
 * path over the app's own HTTP server, watching over the transport's connection, and its actions
 * refused unless JSON from the same origin. The page itself is driven in a browser by
 * test/e2e/console.e2e-spec.ts.
 */
const suite = useDriverApps();

@Controller()
class WidgetDriver {
  @Reconcile({ resource: 'widget' })
  async run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    ctx.logger.info(`building ${resource.name}`);
    ctx.progress({ done: 1, total: 2 });
    return { success: true, message: `built ${resource.name}` };
  }
}

async function listening(app: INestApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  return (await app.getUrl()).replace('[::1]', '127.0.0.1');
}

async function until<T = any>(timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not seen within ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe('ConveyorConsoleModule', () => {
  it('serves nothing unless enabled', async () => {
    const { app } = await suite.start(uniqueDriverName('console-off'), [WidgetDriver], {
      imports: [ConveyorConsoleModule.register()],
    });
    const url = await listening(app);
    expect((await fetch(`${url}/conveyor/console`)).status).toBe(404);
  });

  it('serves the page and the live state at its path, and takes actions only as same-origin JSON', async () => {
    const name = uniqueDriverName('console-on');
    const { app } = await suite.start(name, [WidgetDriver], {
      imports: [ConveyorConsoleModule.register({ enabled: true, path: '/ops/console/' })],
    });
    const url = await listening(app);
    const page = await fetch(`${url}/ops/console`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    const html = await page.text();
    expect(html).toContain('<meta name="conveyor-console-base" content="/ops/console">');
    // Nothing fetched from elsewhere: no src or href to another origin.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);

    const sent = await publishDriverMessage(suite.env.js, {
      driver: name,
      resource: makeResource({ resource: 'widget', name: 'w1', spec: {} }),
    });
    const runId = sent.message.run_id;
    const state = await until(10_000, async () => {
      const body: any = await (await fetch(`${url}/ops/console/api/state`)).json();
      const run = body.runs.find((r: { run_id: string }) => r.run_id === runId);
      const live = body.drivers.find((d: { driver: string }) => d.driver === name)?.instances.length > 0;
      return run?.steps[0]?.state === 'succeeded' && live ? body : undefined;
    });
    expect(state.connected).toBe(true);
    const run = state.runs.find((r: { run_id: string }) => r.run_id === runId);
    expect(run.resource).toEqual({ type: 'widget', name: 'w1' });
    expect(run.steps[0]).toMatchObject({ driver: name, message: 'built w1' });
    expect(run.logs.map((l: { message: string }) => l.message)).toContain('building w1');
    const driver = state.drivers.find((d: { driver: string }) => d.driver === name);
    expect(driver.instances[0]).toMatchObject({ pid: process.pid, concurrency: 1 });
    // Read from JetStream (at most a second old): numbers, whatever the moment.
    expect(driver.consumer).toEqual({
      pending: expect.any(Number),
      ack_pending: expect.any(Number),
      redelivered: expect.any(Number),
      waiting: expect.any(Number),
    });
    expect(state.dead_letters.subject).toBeUndefined();

    const cancel = `${url}/ops/console/api/runs/${runId}/cancel`;
    expect((await fetch(cancel, { method: 'POST', body: 'reason=x' })).status).toBe(415);
    const foreign = await fetch(cancel, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example' },
      body: '{}',
    });
    expect(foreign.status).toBe(403);
    const accepted = await fetch(cancel, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'from the test' }),
    });
    expect(accepted.status).toBe(200);
    expect(await accepted.json()).toEqual({ remembered: true });
    const unknown = await fetch(`${url}/ops/console/api/dead-letters/dl-9/replay`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(unknown.status).toBe(404);
  });
});
