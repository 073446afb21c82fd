import { NatsConnection, connect } from 'nats';
import { RUN_CANCELS_BUCKET, cancelSubject } from '@conveyor-ci/nestjs/internal';
import { ConveyorTestEnv, eventually } from '@conveyor-ci/testing';
import { RunCancellations } from '../../libs/conveyor/src/run-control/run-cancellations';

/** The subjects `nc` is subscribed to, the request inbox (shared by every request) left out. */
function subscribedSubjects(nc: NatsConnection): string[] {
  const subscriptions = (nc as unknown as { protocol: { subscriptions: ProtocolSubscriptions } }).protocol
    .subscriptions;
  return subscriptions
    .all()
    .filter((sub) => sub !== subscriptions.getMux())
    .map((sub) => sub.subject);
}
interface ProtocolSubscriptions {
  all(): { subject: string }[];
  getMux(): unknown;
}

describe('RunCancellations on a redial (real nats-server)', () => {
  let env: ConveyorTestEnv;
  const connections: NatsConnection[] = [];
  beforeAll(async () => {
    env = await ConveyorTestEnv.start();
  });
  afterAll(async () => {
    await Promise.all(connections.map((nc) => nc.close()));
    await env.stop();
  });

  it('listens on the new connection only: the old one keeps no subscription, a cancel is heard once', async () => {
    const [nc1, nc2] = await Promise.all([connect({ servers: env.url }), connect({ servers: env.url })]);
    connections.push(nc1, nc2);
    const cancellations = new RunCancellations();
    const heard: string[] = [];
    cancellations.addListener({ cancel: (runId) => heard.push(runId) && 0 });

    await cancellations.listen(nc1, 60_000);
    expect(subscribedSubjects(nc1).length).toBeGreaterThan(0); // the core subject and the bucket's watch
    // A redial: the transport listens again, on the new connection; the old one is still open.
    await cancellations.listen(nc2, 60_000);
    await eventually(() => subscribedSubjects(nc1).length === 0, 'nc1 without subscriptions', 2000).catch(
      () => expect(subscribedSubjects(nc1)).toEqual([]),
    );

    // On the core subject alone, then in the bucket alone: each heard once, through nc2.
    env.nc.publish(cancelSubject('live-run'), JSON.stringify({ run_id: 'live-run', reason: 'stop' }));
    await env.nc.flush();
    const kv = await env.nc.jetstream().views.kv(RUN_CANCELS_BUCKET);
    await kv.put('later-run', JSON.stringify({ run_id: 'later-run', reason: 'stop' }));
    await eventually(() => heard.length >= 2, 'both cancels heard', 2000);
    await new Promise((resolve) => setTimeout(resolve, 200)); // a second delivery would be here by now
    expect(heard.sort()).toEqual(['later-run', 'live-run']);
    expect(cancellations.reasonOf('live-run')).toBe('stop');

    cancellations.close();
    await eventually(() => subscribedSubjects(nc2).length === 0, 'nc2 without subscriptions', 2000).catch(
      () => expect(subscribedSubjects(nc2)).toEqual([]),
    );
  });
});
