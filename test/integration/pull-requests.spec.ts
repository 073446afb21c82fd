import type { Socket } from 'node:net';
import { AckPolicy, connect, nanos } from 'nats';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
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

describe('PullRequester closing (real nats-server)', () => {
  let env: ConveyorTestEnv;
  beforeAll(async () => {
    env = await ConveyorTestEnv.start();
  });
  afterAll(() => env.stop());

  it('naks the deliveries already on the wire when it closes: nothing is left for AckWait', async () => {
    const consumer = 'closing-requester';
    await env.jsm.consumers.add(MESSAGES_STREAM, {
      durable_name: consumer,
      ack_policy: AckPolicy.Explicit,
      filter_subject: 'resources.closing',
      ack_wait: nanos(30_000),
    });
    const nc = await connect({ servers: env.url });
    const seen: number[] = [];
    const requester = new PullRequester(
      nc,
      consumer,
      {
        message: (m) => seen.push(m.streamSequence),
        consumerDeleted: () => undefined,
        warn: () => undefined,
      },
      () => undefined,
    );
    requester.pull(5);
    await nc.flush(); // the server holds the request
    // Deliveries on the wire when the requester stops listening: the socket is not read while
    // they are sent (as on a busy link), then the requester closes, then the bytes arrive.
    const socket = (nc as unknown as { protocol: { transport: { socket: Socket } } }).protocol.transport
      .socket;
    socket.pause();
    for (let i = 0; i < 5; i++) await env.js.publish('resources.closing', new TextEncoder().encode(`{}`));
    const closed = requester.close();
    socket.resume();
    await closed;
    await nc.flush();
    expect(seen).toEqual([]); // none reached the session: it is stopping
    // Another replica gets all five at once, not after the 30 s AckWait.
    const other = await connect({ servers: env.url });
    const redelivered: number[] = [];
    const next = new PullRequester(
      other,
      consumer,
      {
        message: (m) => {
          redelivered.push(m.deliveryCount);
          m.ack();
        },
        consumerDeleted: () => undefined,
        warn: () => undefined,
      },
      () => undefined,
    );
    next.pull(5);
    const deadline = Date.now() + 3000;
    while (redelivered.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(redelivered).toEqual([2, 2, 2, 2, 2]);
    await next.close();
    await other.close();
    await nc.close();
  });
});
