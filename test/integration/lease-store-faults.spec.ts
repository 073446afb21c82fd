import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { AckPolicy, nanos } from 'nats';
import { Reconcile, Resource } from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { RUN_LEASES_BUCKET } from '@conveyor-ci/nestjs/protocol';
import { makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { settledDeliveries } from '../support/consumer-deliveries';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';

/** A lease store that answers but never takes a lease: its own nats-server, so no other suite sees it. */
const suite = useDriverApps();

@Controller()
class LeasedDriver {
  static runs = 0;
  @Reconcile({ resource: 'leased', perResource: 'serialize' })
  run(@Payload() resource: Resource) {
    LeasedDriver.runs += 1;
    return { success: true, message: `built ${resource.name}` };
  }
}

describe('a lease store that cannot take leases', () => {
  it("ends with a failure result at the consumer's max_deliver, below maxAttempts: never dropped by the server", async () => {
    // Full at once: every create is refused ("maximum bytes exceeded"), so no lease can be taken.
    await suite.env.js.views.kv(RUN_LEASES_BUCKET, { max_bytes: 1, history: 1 });
    const name = uniqueDriverName();
    // An operator's consumer: the server gives up redelivering after 2 deliveries.
    await suite.env.jsm.consumers.add(MESSAGES_STREAM, {
      durable_name: name,
      filter_subjects: ['resources.leased', `drivers.${name}.resources.leased`],
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(30_000),
      max_deliver: 2,
    });
    await suite.start(name, [LeasedDriver], {
      options: { maxAttempts: 3, backoff: { initialMs: 100, maxMs: 100 } },
    });
    const sent = await publishDriverMessage(suite.env.js, {
      resource: makeResource({ name: 'repo', resource: 'leased', spec: {} }),
      driver: name,
    });
    const result = await suite.env.results.waitForRun(sent.message.run_id, 15_000);
    expect(result.driverresult).toMatchObject({ success: false });
    expect(result.driverresult.message).toMatch(
      /^gave up after 2 attempts: cannot take the lease of leased\/repo/,
    );
    expect(LeasedDriver.runs).toBe(0);
    expect(await settledDeliveries(suite.env.jsm, name)).toBe(2);
  }, 30_000);
});
