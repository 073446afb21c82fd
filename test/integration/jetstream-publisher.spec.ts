import { connect, NatsConnection, JetStreamManager } from 'nats';
import { NatsFaultProxy, NatsServer } from '@conveyor-ci/testing';
import { JetStreamPublisher } from '../../libs/conveyor/src/transport/jetstream.publisher';

/**
 * The publisher behind results and log lines, when a PubAck never comes: found by the fault suite
 * (case 2: a stream electing a leader drops publishes silently; a node dying takes the last writes).
 */
describe('JetStreamPublisher: unanswered publishes (real nats-server behind a fault proxy)', () => {
  let server: NatsServer;
  let proxy: NatsFaultProxy;
  let admin: NatsConnection;
  let jsm: JetStreamManager;
  const open: NatsConnection[] = [];

  beforeAll(async () => {
    server = await NatsServer.start();
    proxy = await NatsFaultProxy.start(server.port);
    admin = await connect({ servers: server.url });
    jsm = await admin.jetstreamManager();
    await jsm.streams.add({ name: 'pubtest', subjects: ['pubtest.>'] });
  });
  afterEach(async () => {
    for (const nc of open.splice(0)) await nc.close();
    await jsm.streams.purge('pubtest');
  });
  afterAll(async () => {
    await admin.close();
    await proxy.close();
    await server.stop();
  });

  const client = async () => {
    const nc = await connect({ servers: proxy.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    open.push(nc);
    return nc;
  };
  const dropNextPubAck = () =>
    proxy.drop((m) => m.subject.startsWith('_INBOX.') && m.body.includes('"stream"'));
  const stored = async () => (await jsm.streams.info('pubtest')).state.messages;

  it('sends a publish again while it is unanswered, and the stream stores it once', async () => {
    const publisher = new JetStreamPublisher(await client(), { resendAfterMs: 300 });
    const lost = dropNextPubAck();
    const started = Date.now();
    const ack = await publisher.publish('pubtest.a', new TextEncoder().encode('one'), 'msg-a', 5000);
    expect(lost.dropped).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(2000); // not the 5 s timeout
    expect(ack).toMatchObject({ stream: 'pubtest', duplicate: true });
    expect(await stored()).toBe(1);
    publisher.close();
  });

  it('sends what is unanswered again after a reconnect', async () => {
    const nc = await client();
    const publisher = new JetStreamPublisher(nc); // no periodic resend: only the reconnect
    const lost = dropNextPubAck();
    const answered = publisher.publish('pubtest.b', new TextEncoder().encode('two'), 'msg-b', 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(lost.dropped).toHaveLength(1);
    const cutAt = Date.now();
    proxy.cutConnections();
    await answered;
    expect(Date.now() - cutAt).toBeLessThan(3000); // not the 10 s timeout
    expect(await stored()).toBe(1);
    publisher.close();
  });
});
