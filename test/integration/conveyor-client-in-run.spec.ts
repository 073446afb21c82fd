import { Controller } from '@nestjs/common';
import { ConveyorApiError, ConveyorClient, Reconcile } from '@conveyor-ci/nestjs';
import { eventually, makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { FlakyHttpServer } from '../support/flaky-http.server';

/** The injected ConveyorClient inside a run: the run's signal, and API outages thrown by handlers. */
const suite = useDriverApps();
const { start, closeAfterTest, expectSettled } = suite;

async function flakyApi(): Promise<FlakyHttpServer> {
  const server = await FlakyHttpServer.start();
  closeAfterTest(() => server.close());
  return server;
}

it('a run that times out does not wait on the API: its ctx.signal aborts the call', async () => {
  const api = await flakyApi();
  api.failNext('hang');
  const errors: { error: ConveyorApiError; afterMs: number }[] = [];
  @Controller()
  class SlowApiDriver {
    constructor(private readonly client: ConveyorClient) {}
    @Reconcile({ resource: 'widget' })
    async run() {
      const started = Date.now();
      await this.client
        .getResource('widget', 'w')
        .catch((error: ConveyorApiError) => errors.push({ error, afterMs: Date.now() - started }));
      return { success: true };
    }
  }
  const name = uniqueDriverName();
  await start(name, [SlowApiDriver], {
    options: { driverName: name, apiUrl: api.url, reconcileTimeoutMs: 300, client: { timeoutMs: 60_000 } },
  });
  const sent = await publishDriverMessage(suite.env.js, {
    driver: name,
    resource: makeResource({ name: 'w', resource: 'widget', spec: {} }),
  });
  const result = await suite.env.results.waitForRun(sent.message.run_id);
  expect(result.driverresult).toMatchObject({ success: false, message: 'timed out after 300 ms' });
  await eventually(() => errors.length === 1, 'the API call ends');
  expect(errors[0].error).toMatchObject({ status: 0, code: 'ABORTED_IN_FLIGHT' });
  // Aborted with the run at 300 ms, far from the client's own 60 s timeout.
  expect(errors[0].afterMs).toBeLessThan(3000);
  expect(api.requests).toHaveLength(1);
});

it('an API outage thrown by a handler is retried later, not reported as a failure', async () => {
  const api = await flakyApi();
  // Two attempts of the first delivery fail (the client retries once), the second delivery succeeds.
  api.failNext({ status: 503 }, { status: 503 });
  @Controller()
  class ApiDriver {
    constructor(private readonly client: ConveyorClient) {}
    @Reconcile({ resource: 'widget' })
    async run() {
      await this.client.getResourceDefinition('widget');
      return { success: true, message: 'the API answered' };
    }
  }
  const name = uniqueDriverName();
  const { strategy } = await start(name, [ApiDriver], {
    options: {
      driverName: name,
      apiUrl: api.url,
      client: { retries: 1, retryBackoff: { initialMs: 10, maxMs: 10 } },
      backoff: { initialMs: 100, maxMs: 100 },
    },
  });
  const sent = await publishDriverMessage(suite.env.js, {
    driver: name,
    resource: makeResource({ name: 'w', resource: 'widget', spec: {} }),
  });
  const result = await suite.env.results.waitForRun(sent.message.run_id);
  expect(result.driverresult).toMatchObject({ success: true, message: 'the API answered' });
  expect(strategy.stats.settled.retried).toBe(1);
  expect(api.requests).toHaveLength(3);
  await expectSettled(name, 2);
});
