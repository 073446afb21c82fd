import {
  DRIVER_MESSAGE_BYTES,
  DRIVER_MESSAGE_GO_ESCAPED_BYTES,
  GO_LOG_LINE_BYTES,
  PIPELINE_INIT_EVENT_BYTES,
  PIPELINE_RESULT_EVENT,
} from './fixtures';
import {
  MalformedMessageError,
  decodeDriverMessage,
  encodeGoJson,
  LOG_LINE_MIDDLE,
  LOG_LINE_TAIL,
  encodeWire,
  logLineHead,
  logMessageText,
  toPipelineEvent,
} from './codec';
import {
  assertSubjectToken,
  consumerFilterSubjects,
  isPublishSubject,
  isSubjectToken,
  liveLogSubject,
  logSubject,
  parseMessageSubject,
  pipelineStepSubject,
  resourceSubject,
} from './subjects';

const RUN_ID = '0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10';
const GOOD_PAYLOAD = JSON.stringify({ name: 'w', resource: 'widget', spec: {} });

describe('decodeDriverMessage (contract §3.4 golden bytes)', () => {
  it('decodes the string payload into a Resource and keeps the raw payload string', () => {
    const decoded = decodeDriverMessage(new TextEncoder().encode(DRIVER_MESSAGE_BYTES));
    expect(decoded.message).toMatchObject({
      event: 'create',
      id: '9f2b6c1d0e3a4b5c6d7e8f90',
      run_id: RUN_ID,
    });
    expect(decoded.resource).toEqual({
      id: '6f1c2a4e-3b7d-4c1e-9a55-0c2f5e7d8a91',
      name: 'build-app',
      pipeline: 'flutter-pipeline',
      resource: 'flutter-builder',
      metadata: { version: '1' },
      spec: { repository: 'https://github.com/org/repo', env: [] },
    });
    expect(decoded.payload).toBe(JSON.parse(DRIVER_MESSAGE_BYTES).payload);
  });

  it("undoes Go's \\u003c escaping and keeps driverresults metadata as the JSON string the server stores", () => {
    const { message, resource } = decodeDriverMessage(DRIVER_MESSAGE_GO_ESCAPED_BYTES);
    expect(message.event).toBe('process');
    expect(resource.spec).toEqual({ script: 'make > out.log && test -s out.log < /dev/null' });
    const stored = resource.metadata?.['driverresults.container-start'];
    expect(typeof stored).toBe('string');
    expect(JSON.parse(stored as string)).toEqual({
      success: true,
      message: 'ok',
      data: { containerID: 'abc123' },
      driver: 'container-start',
    });
  });

  it('accepts an object payload (the SDD model) and metadata values of any JSON type (upstream §15)', () => {
    const decoded = decodeDriverMessage(
      JSON.stringify({
        event: 'update',
        payload: {
          name: 'a',
          resource: 'pipeline',
          metadata: { driverresults: { x: { success: true } } },
          spec: null,
        },
        id: 'abc',
        run_id: RUN_ID,
        extra: 'ignored like Go does',
      }),
    );
    expect(decoded.resource.metadata).toEqual({ driverresults: { x: { success: true } } });
    expect(JSON.parse(decoded.payload)).toEqual(decoded.resource);
  });

  it.each([
    ['not JSON', '{nope', /message is not valid JSON/, undefined],
    ['an array', '[1]', /not a JSON object/, undefined],
    ['no run id', JSON.stringify({ event: 'create', payload: '{}', id: 'a' }), /no "run_id"/, undefined],
    [
      'unsafe run id',
      JSON.stringify({ event: 'create', payload: '{}', id: 'a', run_id: 'a.b' }),
      /not a subject-safe/,
      undefined,
    ],
    [
      'payload not JSON',
      JSON.stringify({ event: 'create', payload: '{x', id: 'a', run_id: RUN_ID }),
      /payload is not valid JSON/,
      RUN_ID,
    ],
    [
      'payload not a Resource',
      JSON.stringify({ event: 'create', payload: '{"name":"x"}', id: 'a', run_id: RUN_ID }),
      /"resource"/,
      RUN_ID,
    ],
    [
      'payload a number',
      JSON.stringify({ event: 'create', payload: 5, id: 'a', run_id: RUN_ID }),
      /neither a string nor an object/,
      RUN_ID,
    ],
    ['no event', JSON.stringify({ payload: GOOD_PAYLOAD, id: 'a', run_id: RUN_ID }), /"event"/, RUN_ID],
    ['no id', JSON.stringify({ event: 'create', payload: GOOD_PAYLOAD, run_id: RUN_ID }), /"id"/, RUN_ID],
    [
      'an unprintable id',
      JSON.stringify({ event: 'create', payload: GOOD_PAYLOAD, id: 'a b', run_id: RUN_ID }),
      /"id"/,
      RUN_ID,
    ],
  ])('rejects %s with a reason (and the run id when it was readable)', (_name, bytes, reason, runId) => {
    let caught: unknown;
    try {
      decodeDriverMessage(bytes);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MalformedMessageError);
    expect((caught as MalformedMessageError).reason).toMatch(reason);
    expect((caught as MalformedMessageError).runId).toBe(runId);
    // Only a broken event or id leaves the resource readable: enough for a failure result.
    const resource = (caught as MalformedMessageError).resource;
    if (/"(event|id)"/.test(String(reason))) expect(resource).toEqual(JSON.parse(GOOD_PAYLOAD));
    else expect(resource).toBeUndefined();
  });

  it('rejects bytes that are not UTF-8', () => {
    expect(() => decodeDriverMessage(new Uint8Array([0xff, 0xfe, 0x7b]))).toThrow(/not valid UTF-8/);
  });
});

describe('result encoding (contract §3.6)', () => {
  it('builds the PipelineEvent key by key, in Go field order', () => {
    const { resource, driverresult } = PIPELINE_RESULT_EVENT;
    const event = toPipelineEvent(
      RUN_ID,
      { ...resource, metadata: { ...resource.metadata } },
      driverresult,
      'container-start',
    );
    expect(Object.keys(event)).toEqual(['event', 'run_id', 'resource', 'driverresult']);
    expect(Object.keys(event.driverresult)).toEqual(['success', 'message', 'data', 'driver']);
    expect(encodeGoJson(event)).toBe(JSON.stringify(PIPELINE_RESULT_EVENT));
  });

  it('always sends all four driverresult keys, with Go zero values (data:null, message:"")', () => {
    const init = JSON.parse(PIPELINE_INIT_EVENT_BYTES);
    const event = toPipelineEvent(RUN_ID, init.resource, { success: false }, '');
    expect(encodeGoJson({ ...event, event: 'create' })).toBe(PIPELINE_INIT_EVENT_BYTES);
  });

  it("escapes <, >, &, U+2028 and U+2029 like Go's encoding/json", () => {
    expect(encodeGoJson({ m: 'a<b>&c\u2028\u2029' })).toBe('{"m":"a\\u003cb\\u003e\\u0026c\\u2028\\u2029"}');
    expect(JSON.parse(encodeGoJson({ m: 'a<b>&c' }))).toEqual({ m: 'a<b>&c' });
  });

  it('has the Log JSON keys of §3.7 (runid without underscore)', () => {
    expect(Object.keys(JSON.parse(GO_LOG_LINE_BYTES))).toEqual([
      'runid',
      'driver',
      'pipeline',
      'timestamp',
      'message',
    ]);
  });
});

describe('subjects (contract §5.2)', () => {
  it('builds every driver subject', () => {
    expect(resourceSubject('pipeline')).toBe('resources.pipeline');
    expect(pipelineStepSubject('shell-runner', 'pipeline')).toBe('drivers.shell-runner.resources.pipeline');
    expect(logSubject(RUN_ID)).toBe(`logs.${RUN_ID}`);
    expect(liveLogSubject(RUN_ID, 'shell-runner')).toBe(`live.logs.${RUN_ID}.shell-runner`);
  });

  it('gives both filter subjects per resource, de-duplicated and sorted', () => {
    expect(consumerFilterSubjects('d', ['b', 'a', 'b'])).toEqual([
      'resources.a',
      'drivers.d.resources.a',
      'resources.b',
      'drivers.d.resources.b',
    ]);
  });

  it.each(['', 'a.b', 'a*', '>', 'a b', 'a/b', 'tab\t', 'nl\n', 'x'.repeat(256), 7, null])(
    'refuses %p as a subject token',
    (value) => {
      expect(isSubjectToken(value)).toBe(false);
      expect(() => assertSubjectToken('driver name', value)).toThrow(
        /driver name .* cannot be used in a NATS subject/,
      );
    },
  );

  it('accepts the names Conveyor uses', () => {
    for (const ok of ['shell-runner', 'container_start', RUN_ID, 'Builder01'])
      expect(isSubjectToken(ok)).toBe(true);
  });

  it('tells publishable subjects from wildcards and malformed ones', () => {
    for (const ok of ['events.deadletter.shell-runner', 'dlq', 'a.b.c'])
      expect(isPublishSubject(ok)).toBe(true);
    for (const bad of ['', 'events.>', 'events.*.x', 'a..b', '.a', 'a.', 'a b', 7])
      expect(isPublishSubject(bad)).toBe(false);
  });

  it('parses message subjects back into routes', () => {
    expect(parseMessageSubject('resources.pipeline')).toEqual({ kind: 'resource', resource: 'pipeline' });
    expect(parseMessageSubject('drivers.d.resources.pipeline')).toEqual({
      kind: 'pipeline-step',
      driver: 'd',
      resource: 'pipeline',
    });
    expect(parseMessageSubject('events.d.x')).toBeNull();
    expect(parseMessageSubject('resources.a.b')).toBeNull();
  });
});

describe('Log JSON parts', () => {
  it.each([
    ['plain text'],
    ['html <b>&amp;</b> and "quotes" \\ backslashes'],
    ['line\u2028separator\u2029 and emoji 🚀 and tab\t'],
    ['a lone \ud800 surrogate, control \u0001 and DEL \u007f'],
    ['just a "quote"'],
    ['[12:00:01] plain ASCII, the common case: no escaping at all'],
    [''],
  ])('is byte-identical to encoding the whole Log JSON: %j', (message) => {
    const log = {
      runid: 'r-1',
      driver: 'd',
      pipeline: 'p <&>',
      timestamp: '2026-12-01T10:00:00.123456789Z',
      message,
    };
    const line = logLineHead(log) + log.timestamp + LOG_LINE_MIDDLE + logMessageText(message) + LOG_LINE_TAIL;
    expect(line).toBe(Buffer.from(encodeWire(log)).toString());
  });
});
