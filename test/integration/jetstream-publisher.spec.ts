import { Logger } from '@nestjs/common';
import { connect, ErrorCode, NatsConnection, JetStreamManager } from 'nats';
import { NatsFaultProxy, NatsServer, eventually } from '@conveyor-ci/testing';
import { resolveConveyorConfig } from '@conveyor-ci/nestjs/internal';
import { RESULT_SUBJECT, type LogShipper } from '@conveyor-ci/nestjs/internal';
import { NatsResultPort } from '../../libs/conveyor/src/transport/nats-result.port';
import {
  JetStreamPublisher,
  type StoredAck,
  type StoredBatch,
} from '../../libs/conveyor/src/transport/jetstream.publisher';
import {
  FrameTarget,
  type FramePayload,
  type FrameWriter,
  frameWriterFor,
  publishFrameWriter,
} from '../../libs/conveyor/src/transport/nats-frames';

/**
 * A real nats-server behind a fault proxy, with one stream `{stream}` on `{stream}.>` (purged after
 * each test), and client connections through the proxy that reconnect at once.
 */
function useProxiedStream(stream: string) {
  const env = {} as { server: NatsServer; proxy: NatsFaultProxy; jsm: JetStreamManager };
  let admin: NatsConnection;
  const open: NatsConnection[] = [];
  beforeAll(async () => {
    env.server = await NatsServer.start();
    env.proxy = await NatsFaultProxy.start(env.server.port);
    admin = await connect({ servers: env.server.url });
    env.jsm = await admin.jetstreamManager();
    await env.jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  });
  afterEach(async () => {
    for (const nc of open.splice(0)) await nc.close();
    await env.jsm.streams.purge(stream);
  });
  afterAll(async () => {
    await admin.close();
    await env.proxy.close();
    await env.server.stop();
  });
  const client = async () => {
    const nc = await connect({ servers: env.proxy.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    open.push(nc);
    return nc;
  };
  return { env, client };
}

/**
 * The publisher behind results and log lines, when a PubAck never comes: found by the fault suite
 * (case 2: a stream electing a leader drops publishes silently; a node dying takes the last writes).
 */
describe('JetStreamPublisher: unanswered publishes (real nats-server behind a fault proxy)', () => {
  const { env, client } = useProxiedStream('pubtest');

  const dropNextPubAck = () =>
    env.proxy.drop((m) => m.subject.startsWith('_INBOX.') && m.body.includes('"stream"'));
  const stored = async () => (await env.jsm.streams.info('pubtest')).state.messages;

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

  it('sweeps only while a publish waits (an idle driver is not woken for it), and again for the next one', async () => {
    const publisher = new JetStreamPublisher(await client(), { resendAfterMs: 300 });
    expect(publisher.sweeping).toBe(false);
    for (const id of ['msg-idle-1', 'msg-idle-2']) {
      const lost = dropNextPubAck();
      const started = Date.now();
      const answered = publisher.publish('pubtest.idle', new TextEncoder().encode(id), id, 5000);
      expect(publisher.sweeping).toBe(true);
      // Sent again by the sweep, so the restarted sweep works as the first one did.
      expect(await answered).toMatchObject({ stream: 'pubtest', duplicate: true });
      expect(lost.dropped).toHaveLength(1);
      expect(Date.now() - started).toBeLessThan(2000); // not the 5 s timeout
      await eventually(() => !publisher.sweeping, 'the sweep stopped once nothing waited');
    }
    expect(await stored()).toBe(2);
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
    env.proxy.cutConnections();
    await answered;
    expect(Date.now() - cutAt).toBeLessThan(3000); // not the 10 s timeout
    expect(await stored()).toBe(1);
    publisher.close();
  });
});

/** Written in place, as log lines are: the text's UTF-8 bytes. */
const inPlace = (text: string): FramePayload => ({ writeTo: (buf, at) => at + buf.write(text, at, 'utf8') });

/**
 * A batch of `payloads` on `subject`, ids `{idPrefix}-{i}`; strings are written in place, with a
 * live copy on `live` (first send only). `misstate` claims one byte more for string payloads.
 */
function batchOf(
  subject: string,
  payloads: (string | Uint8Array)[],
  idPrefix: string,
  live?: string,
  misstate = 0,
): StoredBatch {
  const target = new FrameTarget(subject, `${idPrefix}-`);
  const liveTarget = live ? new FrameTarget(live) : undefined;
  return {
    count: payloads.length,
    writeFrames(writer: FrameWriter, firstReply: string, lastReply: string, firstSend: boolean) {
      const last = payloads.length - 1;
      payloads.forEach((payload, i) => {
        const reply = i === 0 ? firstReply : i === last ? lastReply : '';
        if (typeof payload !== 'string') return writer.stored(target, reply, i, payload, payload.length);
        writer.stored(target, reply, i, inPlace(payload), Buffer.byteLength(payload) + misstate);
        if (firstSend && liveTarget) writer.coreCopy(liveTarget);
      });
    },
  };
}

const sendBatch = (publisher: JetStreamPublisher, batch: StoredBatch, timeoutMs = 5000) =>
  new Promise<StoredAck>((resolve, reject) =>
    publisher.sendBatch(batch, timeoutMs, (err, ack) => (err ? reject(err) : resolve(ack!))),
  );

describe('JetStreamPublisher: batches (two PubAcks for many lines)', () => {
  const { env, client } = useProxiedStream('batchtest');

  const storedMessages = async () => {
    const { first_seq, last_seq, messages } = (await env.jsm.streams.info('batchtest')).state;
    const found: { subject: string; msgId?: string; body: string }[] = [];
    for (let seq = first_seq; messages > 0 && seq <= last_seq; seq++) {
      const m = await env.jsm.streams.getMessage('batchtest', { seq });
      found.push({
        subject: m.subject,
        msgId: m.header.get('Nats-Msg-Id'),
        body: Buffer.from(m.data).toString(),
      });
    }
    return found;
  };

  it('sends a batch again when a line between its two PubAcks never reached the stream, and stores each line once', async () => {
    const publisher = new JetStreamPublisher(await client());
    const lines = Array.from({ length: 10 }, (_, i) => `line ${i}`);
    const lost = env.proxy.dropPublishes((m) => m.subject === 'batchtest.gap' && m.body === 'line 5');
    await sendBatch(publisher, batchOf('batchtest.gap', lines, 'gap'));
    expect(lost.dropped).toHaveLength(1);
    expect(publisher.gapsResent).toBe(1);
    const stored = await storedMessages();
    expect(stored.map((m) => m.body).sort()).toEqual([...lines].sort());
    expect(new Set(stored.map((m) => m.msgId)).size).toBe(10);
    publisher.close();
  });

  it('writes the same messages as nc.publish would: headers, UTF-8 and binary payloads, live copies once', async () => {
    const nc = await client();
    const live: string[] = [];
    const sub = nc.subscribe('batchlive.>', { callback: (_e, m) => live.push(`${m.subject} ${m.string()}`) });
    await nc.flush();
    const payloads = ['plain ASCII', 'é, € and 🚀', '{"json":"with \\"escapes\\""}', ''];
    const framed = new JetStreamPublisher(nc);
    const published = new JetStreamPublisher(nc, { writer: publishFrameWriter(nc) });
    // The installed nats.js offers the raw path (a nats.js without it falls back to nc.publish).
    expect(frameWriterFor(nc).constructor.name).toBe('ProtocolFrameWriter');
    await sendBatch(framed, batchOf('batchtest.a', payloads, 'a', 'batchlive.a'));
    await sendBatch(published, batchOf('batchtest.b', payloads, 'b', 'batchlive.b'));
    const binary = Uint8Array.from([0, 1, 2, 13, 10, 255]);
    await framed.publish('batchtest.a', binary, 'a-bin', 5000);
    await published.publish('batchtest.b', binary, 'b-bin', 5000);
    await nc.flush();
    const stored = await storedMessages();
    const of = (s: string) =>
      stored
        .filter((m) => m.subject === `batchtest.${s}`)
        .map((m) => ({ id: m.msgId!.slice(2), body: m.body }));
    expect(of('a')).toEqual(of('b'));
    expect(of('a').map((m) => m.body)).toEqual([...payloads, Buffer.from(binary).toString()]);
    expect(live.filter((l) => l.startsWith('batchlive.a ')).map((l) => l.slice(12))).toEqual(payloads);
    expect(live.filter((l) => l.startsWith('batchlive.b ')).map((l) => l.slice(12))).toEqual(payloads);
    sub.unsubscribe();
    framed.close();
    published.close();
  });

  it('writes non-ASCII subjects and message ids in UTF-8, as nc.publish does (a driver may be named so)', async () => {
    const nc = await client();
    const live: string[] = [];
    const sub = nc.subscribe('batchlive.>', { callback: (_e, m) => live.push(m.subject) });
    await nc.flush();
    const framed = new JetStreamPublisher(nc);
    const published = new JetStreamPublisher(nc, { writer: publishFrameWriter(nc) });
    await sendBatch(framed, batchOf('batchtest.räknare-a', ['one', 'two'], 'ö-a', 'batchlive.bygg-€-a'));
    await sendBatch(published, batchOf('batchtest.räknare-b', ['one', 'two'], 'ö-b', 'batchlive.bygg-€-b'));
    // Ids of one stream's window: the two must differ, or the second would be a duplicate.
    await framed.publish('batchtest.räknare-a', Buffer.from('result'), 'körning-ā-a', 5000);
    await published.publish('batchtest.räknare-b', Buffer.from('result'), 'körning-ā-b', 5000);
    await nc.flush();
    const stored = await storedMessages();
    const of = (s: string) =>
      stored.filter((m) => m.subject === `batchtest.räknare-${s}`).map((m) => `${m.msgId} ${m.body}`);
    expect(of('a')).toEqual(['ö-a-0 one', 'ö-a-1 two', 'körning-ā-a result']);
    expect(of('b')).toEqual(['ö-b-0 one', 'ö-b-1 two', 'körning-ā-b result']);
    expect(live.sort()).toEqual([
      'batchlive.bygg-€-a',
      'batchlive.bygg-€-a',
      'batchlive.bygg-€-b',
      'batchlive.bygg-€-b',
    ]);
    sub.unsubscribe();
    framed.close();
    published.close();
  });

  it('publishes a single message (a result) with nc.publish, never through the frame writer', async () => {
    const nc = await client();
    const writer = frameWriterFor(nc);
    const framesWritten = jest.spyOn(writer, 'stored');
    const published = jest.spyOn(nc, 'publish');
    const publisher = new JetStreamPublisher(nc, { writer });
    const data = Buffer.from('{"success":true}');
    const ack = await publisher.publish('batchtest.result', data, 'result-1', 5000);
    expect(ack).toMatchObject({ stream: 'batchtest', seq: expect.any(Number) });
    expect(framesWritten).not.toHaveBeenCalled();
    expect(published).toHaveBeenCalledWith(
      'batchtest.result',
      data,
      expect.objectContaining({ reply: expect.stringMatching(/^_INBOX\./) }),
    );
    expect(published.mock.calls[0][2]?.headers?.get('Nats-Msg-Id')).toBe('result-1');
    expect(await storedMessages()).toEqual([
      { subject: 'batchtest.result', msgId: 'result-1', body: '{"success":true}' },
    ]);
    publisher.close();
  });

  it('says what it still holds: a small write waits in nats.js until the task ends, none once it went', async () => {
    const nc = await client();
    const publisher = new JetStreamPublisher(nc);
    const stored = sendBatch(publisher, batchOf('batchtest.held', ['a line', 'another'], 'held'));
    // Under the size written at once, the frames wait in nats.js's outbound buffer for the task's end.
    expect(publisher.heldBytes()).toBeGreaterThan(0);
    await stored;
    expect(publisher.heldBytes()).toBe(0);
    // A writer that cannot see nats.js's buffers never claims they are empty.
    expect(publishFrameWriter(nc).heldBytes()).toBe(Infinity);
    publisher.close();
  });

  it('refuses a frame over max_payload before writing anything of its batch', async () => {
    const nc = await client();
    const publisher = new JetStreamPublisher(nc);
    const tooBig = 'x'.repeat(nc.info!.max_payload + 1);
    await expect(sendBatch(publisher, batchOf('batchtest.big', ['fits', tooBig], 'big'))).rejects.toThrow(
      /MAX_PAYLOAD/i,
    );
    await sendBatch(publisher, batchOf('batchtest.big', ['after'], 'after'));
    expect((await storedMessages()).map((m) => m.body)).toEqual(['after']);
    publisher.close();
  });

  it('refuses a payload that writes other than the bytes announced for it, and the connection stays usable', async () => {
    const nc = await client();
    const publisher = new JetStreamPublisher(nc);
    // Framed as announced, the server would read the next frame from the wrong place and close the connection.
    await expect(
      sendBatch(publisher, batchOf('batchtest.size', ['ok', 'wrong'], 'size', undefined, 1)),
    ).rejects.toThrow(/announced/);
    await sendBatch(publisher, batchOf('batchtest.size', ['after'], 'size-after'));
    expect((await storedMessages()).map((m) => m.body)).toEqual(['after']);
    expect(nc.isClosed()).toBe(false);
    publisher.close();
  });
});

/** The port the runs publish results through, when the transport dials a new connection. */
describe('NatsResultPort: a redial (real nats-server behind a fault proxy)', () => {
  // The stream `pipelines` captures the result subject, as the Conveyor server's does.
  const { env, client } = useProxiedStream(RESULT_SUBJECT.split('.')[0]);

  it('fails a result left unanswered on the old connection at once, and the retry is stored over the new one', async () => {
    const config = resolveConveyorConfig({ driverName: 'redial' }, {});
    // Publishing results never touches the log shipper.
    const old = await client();
    const port = new NatsResultPort(old, config, {} as LogShipper, new Logger('redial'));
    const lost = env.proxy.drop((m) => m.subject.startsWith('_INBOX.') && m.body.includes('"stream"'));
    const result = new TextEncoder().encode('{"event":"driver.result"}');
    const unanswered = port.publishResult(result, 'run-1:redial:m1');
    unanswered.catch(() => undefined); // awaited below, after the redial
    await eventually(() => lost.dropped.length === 1, 'the PubAck to be dropped');
    await old.close(); // nats.js gave up on it; the transport dials again
    const redialedAt = Date.now();
    port.use(await client());
    // A transient error: the run retries now rather than after the 5 s publish timeout.
    await expect(unanswered).rejects.toMatchObject({ code: ErrorCode.ConnectionClosed });
    expect(Date.now() - redialedAt).toBeLessThan(1000);
    await port.publishResult(result, 'run-1:redial:m1');
    const { messages } = (await env.jsm.streams.info('pipelines')).state;
    expect(messages).toBe(1); // the first copy did land: the retry is its duplicate
  });
});
