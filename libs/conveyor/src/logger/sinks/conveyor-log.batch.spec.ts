import { encodeWire } from '../../protocol';
import type { FramePayload, FrameTarget, FrameWriter } from '../../transport/nats-frames';
import { createRunBinding, formatRfc3339Nano, formatUnixSeconds } from '../run-scope';
import {
  BATCH_LINES,
  ConveyorLogBatch,
  QUEUED_LINE_BYTES,
  TOO_BIG,
  subjectsOf,
  textRoomOf,
} from './conveyor-log.batch';

/** What a batch hands its writer, frame by frame, with each payload written out as the writer would. */
class RecordingWriter implements FrameWriter {
  readonly frames: { subject: string; reply: string; msgId?: string; payload: string }[] = [];
  private last = '';

  stored(
    target: FrameTarget,
    reply: string,
    id: string | number,
    payload: Uint8Array | FramePayload,
    bytes: number,
  ) {
    const buf = Buffer.alloc(bytes + 16, '#');
    const end =
      payload instanceof Uint8Array ? (buf.set(payload, 4), 4 + payload.length) : payload.writeTo(buf, 4);
    expect(end - 4).toBe(bytes); // exactly the bytes announced, where announced
    this.last = buf.toString('utf8', 4, end);
    this.frames.push({
      subject: target.subject,
      reply,
      msgId: `${target.msgIdPrefix}${id}`,
      payload: this.last,
    });
  }

  coreCopy(target: FrameTarget) {
    this.frames.push({ subject: target.subject, reply: '', payload: this.last });
  }

  flush = () => 0;
  discard = () => undefined;
  heldBytes = () => 0;
}

const fields = {
  runId: 'r-1',
  driver: 'shell',
  pipeline: 'p <&> "quoted"',
  event: 'create',
  messageId: 'm-9',
  delivery: 2,
  resource: 'x',
  resourceType: 'pipeline',
};
const binding = createRunBinding(fields);

const US = Date.UTC(2026, 11, 1, 10, 0, 0) * 1000 + 123_456;

function batchOf(format: 'rfc3339' | 'unix', messages: string[], marker = false, startUs = US) {
  const batch = new ConveyorLogBatch(format);
  messages.forEach((message, i) =>
    batch.add(
      subjectsOf(binding),
      { message, bytes: Buffer.byteLength(message), timeUs: startUs + i, timeSubNs: i, seq: i + 1 },
      true,
      marker,
      Infinity,
    ),
  );
  return batch;
}

/** The delivery's `Nats-Msg-Id` prefix, as the batch makes it. */
const prefix = subjectsOf(binding).stored.msgIdPrefix;

describe('ConveyorLogBatch frames', () => {
  it('names each delivery by a short digest: the same for every line and resend of it, another for any other delivery', () => {
    expect(prefix).toMatch(/^[A-Za-z0-9_-]{16}:$/);
    const again = createRunBinding({ ...fields, delivery: 2 });
    expect(subjectsOf(again).stored.msgIdPrefix).toBe(prefix);
    for (const other of [{ delivery: 3 }, { messageId: 'm-10' }, { driver: 'shell2' }, { runId: 'r-2' }])
      expect(subjectsOf(createRunBinding({ ...fields, ...other })).stored.msgIdPrefix).not.toBe(prefix);
  });

  const messages = [
    'plain ASCII, the common case',
    'html <b>&amp;</b>, "quotes" and \\ backslashes',
    'é, € and 🚀, a line\u2028separator and a tab\t',
    'a lone \ud800 surrogate and control \u0001',
    '',
  ];

  it.each(['rfc3339', 'unix'] as const)(
    'writes each line as the Log JSON Go would encode (%s), its live copy after it, replies on the first and last',
    (format) => {
      const writer = new RecordingWriter();
      batchOf(format, messages).writeFrames(writer, 'first', 'last', true);
      const stamp = (i: number) =>
        format === 'unix' ? formatUnixSeconds(US + i) : formatRfc3339Nano(US + i, i);
      const expected = messages.flatMap((message, i) => {
        const payload = Buffer.from(
          encodeWire({
            runid: 'r-1',
            driver: 'shell',
            pipeline: binding.pipeline,
            timestamp: stamp(i),
            message,
          }),
        ).toString();
        return [
          {
            subject: 'logs.r-1',
            reply: i === 0 ? 'first' : i === messages.length - 1 ? 'last' : '',
            msgId: `${prefix}${i + 1}`,
            payload,
          },
          { subject: 'live.logs.r-1.shell', reply: '', payload },
        ];
      });
      expect(writer.frames).toEqual(expected);
    },
  );

  it.each(['rfc3339', 'unix'] as const)(
    'stamps lines either side of a second in their own second (%s), in one batch and after it',
    (format) => {
      // The stamp's fixed part is encoded once a second per run: a new second must renew it.
      const beforeSecond = Date.UTC(2026, 11, 1, 10, 0, 59) * 1000 + 999_998;
      const stamps = (writer: RecordingWriter) =>
        writer.frames
          .filter((f) => f.subject === 'logs.r-1')
          .map((f) => (JSON.parse(f.payload) as { timestamp: string }).timestamp);
      const writer = new RecordingWriter();
      batchOf(format, ['a', 'b', 'c', 'd'], false, beforeSecond).writeFrames(writer, 'f', 'l', true);
      const later = new RecordingWriter();
      batchOf(format, ['e'], false, beforeSecond + 3_000_000).writeFrames(later, 'f', 'l', true);
      const want = (us: number, subNs: number) =>
        format === 'unix' ? formatUnixSeconds(us) : formatRfc3339Nano(us, subNs);
      expect(stamps(writer)).toEqual([0, 1, 2, 3].map((i) => want(beforeSecond + i, i)));
      expect(stamps(writer)[2]).toBe(format === 'unix' ? '1796119260' : '2026-12-01T10:01:00.000000002Z');
      expect(stamps(later)).toEqual([want(beforeSecond + 3_000_000, 0)]);
    },
  );

  it('sends no live copies again on a resend, and gives drop markers their own ids', () => {
    const writer = new RecordingWriter();
    batchOf('rfc3339', ['[conveyor] 3 log line(s) were not shipped'], true).writeFrames(
      writer,
      'a',
      'b',
      false,
    );
    expect(writer.frames.map((f) => [f.subject, f.msgId])).toEqual([['logs.r-1', `${prefix}drops-1`]]);
  });

  it('says what memory each line made it hold, escapes and buffer growth included, all of it in its cost', () => {
    const batch = new ConveyorLogBatch('rfc3339');
    const run = subjectsOf(binding);
    const line = (message: string) => ({
      message,
      bytes: Buffer.byteLength(message),
      timeUs: US,
      timeSubNs: 0,
      seq: 1,
    });
    const first = batch.add(run, line('short'), false, false, Infinity);
    expect(first).toBe(512 + QUEUED_LINE_BYTES); // the first line brings the buffer
    expect(batch.add(run, line('x'.repeat(100)), false, false, Infinity)).toBe(QUEUED_LINE_BYTES); // it fits
    // 500 characters, 1,000 bytes escaped (ESC is \\u001b): the buffer grows to hold all three lines.
    const grown = batch.add(run, line('\u001b[31m'.repeat(100)), false, false, Infinity);
    expect(grown).toBe(5 + 100 + 1000 - 512 + QUEUED_LINE_BYTES);
    expect(batch.cost).toBe(first + QUEUED_LINE_BYTES + grown);
    const writer = new RecordingWriter();
    batch.writeFrames(writer, 'a', 'b', false);
    expect(JSON.parse(writer.frames[2].payload).message).toBe('\u001b[31m'.repeat(100));
  });

  it('is reusable after reset, up to BATCH_LINES lines', () => {
    const batch = batchOf(
      'rfc3339',
      Array.from({ length: BATCH_LINES }, (_, i) => `line ${i}`),
    );
    expect(batch.full).toBe(true);
    batch.reset();
    batch.add(
      subjectsOf(binding),
      { message: 'again', bytes: 5, timeUs: US, timeSubNs: 0, seq: 1 },
      false,
      false,
      Infinity,
    );
    const writer = new RecordingWriter();
    batch.writeFrames(writer, 'a', 'b', true);
    expect(writer.frames).toHaveLength(1);
    expect(JSON.parse(writer.frames[0].payload)).toMatchObject({ message: 'again' });
  });

  it("refuses, and leaves out, a line whose frame would exceed the server's max_payload, escapes counted", () => {
    const batch = new ConveyorLogBatch('rfc3339');
    const run = subjectsOf(binding);
    const line = (message: string) => ({
      message,
      bytes: Buffer.byteLength(message),
      timeUs: US,
      timeSubNs: 0,
      seq: 1,
    });
    const maxPayload = 4096;
    const room = textRoomOf(run, maxPayload);
    expect(batch.add(run, line('a'.repeat(room)), false, false, maxPayload)).toBeGreaterThan(0);
    // Within the room as text, but each ESC is 6 bytes in the Log JSON.
    expect(batch.add(run, line('\u001b'.repeat(room / 2)), false, false, maxPayload)).toBe(TOO_BIG);
    expect(batch.add(run, line('b'.repeat(room + 1)), false, false, maxPayload)).toBe(TOO_BIG);
    expect(batch.count).toBe(1);
    // What is kept is written whole, and its frame is within the limit with the id and the header.
    const writer = new RecordingWriter();
    batch.writeFrames(writer, 'a', 'b', true);
    expect(writer.frames).toHaveLength(1);
    const frame = writer.frames[0];
    expect(
      Buffer.byteLength(frame.payload) + run.stored.header.length + 'drops-99999'.length + 4,
    ).toBeLessThanOrEqual(maxPayload);
  });
});
