import { connect } from 'nats';
import { ConveyorTestEnv } from '@conveyor-ci/testing';
import { PullRequester } from '../../libs/conveyor/src/transport/pull-requests';

describe('PullRequester (real nats-server)', () => {
  let env: ConveyorTestEnv;
  beforeAll(async () => {
    env = await ConveyorTestEnv.start();
  });
  afterAll(() => env.stop());

  it('asks again within 250 ms when nobody serves the consumer (503: no leader), without a warning', async () => {
    // A consumer without a leader (an election on a cluster) answers like one that does not exist: 503.
    const nc = await connect({ servers: env.url });
    const warnings: string[] = [];
    const dropped: number[] = [];
    const requester = new PullRequester(
      nc,
      'nobody-serves-this',
      { message: () => undefined, consumerDeleted: () => undefined, warn: (t) => warnings.push(t) },
      () => dropped.push(Date.now()),
    );
    const pulledAt = Date.now();
    requester.pull(4);
    await new Promise((r) => setTimeout(r, 600));
    expect(requester.outstanding).toBe(0);
    expect(dropped.length).toBeGreaterThanOrEqual(1);
    expect(dropped[0] - pulledAt).toBeLessThan(500); // not the 2.5 s heartbeat watchdog
    expect(warnings).toEqual([]);
    requester.close();
    await nc.close();
  });
});
