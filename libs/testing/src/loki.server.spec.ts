import { gzipSync } from 'node:zlib';
import { LokiServer } from './loki.server';
import { t, stream, oneLine, push, queryRange, type QueryBody, lines } from './loki.server.spec-support';

describe('LokiServer', () => {
  let loki: LokiServer;

  beforeEach(async () => {
    loki = await LokiServer.start();
  });

  afterEach(() => loki.close());

  describe('push', () => {
    it('stores a valid push and answers 204 with an empty body', async () => {
      const res = await push(loki, {
        streams: [
          stream({ driver: 'shell-runner', level: 'info' }, [t(1), 'one'], [t(2), 'two', { run_id: 'r1' }]),
        ],
      });

      expect(res.status).toBe(204);
      expect(await res.text()).toBe('');
      expect(loki.entries()).toEqual([
        { labels: { driver: 'shell-runner', level: 'info' }, ts: t(1), line: 'one' },
        {
          labels: { driver: 'shell-runner', level: 'info' },
          ts: t(2),
          line: 'two',
          metadata: { run_id: 'r1' },
        },
      ]);
      expect([loki.pushes, loki.requests, loki.rejected]).toEqual([1, 1, []]);
    });

    const labels = { driver: 'd' };
    it.each<[string, unknown, string]>([
      ['invalid JSON', '{"streams":[', 'invalid JSON'],
      ['a body without streams', { values: [] }, 'the body must be {"streams":[...]}'],
      ['streams that is not an array', { streams: {} }, 'the body must be {"streams":[...]}'],
      ['an empty streams array', { streams: [] }, 'the push request has no streams'],
      ['a stream that is not an object', { streams: ['x'] }, 'streams[0] must be an object'],
      ['a stream without labels', { streams: [{ values: [[t(1), 'a']] }] }, 'at least one label pair'],
      ['an empty label object', { streams: [stream({}, [t(1), 'a'])] }, 'at least one label pair'],
      ['a non-string label value', { streams: [stream({ n: 1 }, [t(1), 'a'])] }, 'label n must be a string'],
      [
        'a label name starting with a digit',
        { streams: [stream({ '1x': 'a' }, [t(1), 'a'])] },
        'invalid label name "1x"',
      ],
      [
        'a label name with a dash',
        { streams: [stream({ 'app-name': 'a' }, [t(1), 'a'])] },
        'invalid label name',
      ],
      ['a stream with empty values', { streams: [stream(labels)] }, 'at least one value is required'],
      ['a stream without values', { streams: [{ stream: labels }] }, 'at least one value is required'],
      ['a value that is not an array', { streams: [{ stream: labels, values: ['x'] }] }, 'values[0] must be'],
      ['a value of one element', { streams: [stream(labels, [t(1)])] }, 'values[0] must be'],
      ['a value of four elements', { streams: [stream(labels, [t(1), 'a', {}, 'x'])] }, 'values[0] must be'],
      ['a numeric timestamp', { streams: [stream(labels, [1.7e18, 'a'])] }, 'the timestamp must be a string'],
      [
        'a fractional timestamp',
        { streams: [stream(labels, ['1.5', 'a'])] },
        'the timestamp must be a string',
      ],
      ['a negative timestamp', { streams: [stream(labels, ['-1', 'a'])] }, 'the timestamp must be a string'],
      ['an empty timestamp', { streams: [stream(labels, ['', 'a'])] }, 'the timestamp must be a string'],
      ['a timestamp beyond int64', { streams: [stream(labels, ['9223372036854775808', 'a'])] }, 'timestamp'],
      [
        'a line that is not a string',
        { streams: [stream(labels, [t(1), 42])] },
        'values[0][1]: the line must be',
      ],
      ['a null line', { streams: [stream(labels, [t(1), null])] }, 'the line must be a string'],
      ['metadata that is an array', { streams: [stream(labels, [t(1), 'a', ['x']])] }, 'structured metadata'],
      ['null metadata', { streams: [stream(labels, [t(1), 'a', null])] }, 'structured metadata'],
      [
        'nested metadata',
        { streams: [stream(labels, [t(1), 'a', { trace: { id: '1' } }])] },
        'structured metadata',
      ],
      ['a metadata number', { streams: [stream(labels, [t(1), 'a', { n: 1 }])] }, 'structured metadata'],
    ])('rejects %s with 400 and a plain-text reason, storing nothing', async (_name, body, reason) => {
      const res = await push(loki, body);

      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await res.text()).toContain(reason);
      expect(loki.rejected).toEqual([{ status: 400, reason: expect.stringContaining(reason) }]);
      expect([loki.entries(), loki.pushes, loki.requests]).toEqual([[], 0, 1]);
    });

    it('stores nothing from a push whose later stream is invalid', async () => {
      const res = await push(loki, {
        streams: [stream({ driver: 'ok' }, [t(1), 'fine']), stream({ driver: 'bad' }, [1, 'numeric ts'])],
      });

      expect(res.status).toBe(400);
      expect(await res.text()).toContain('streams[1].values[0][0]');
      expect(loki.entries()).toEqual([]);
    });

    it('rejects a line longer than maxLineBytes, counted in UTF-8 bytes, with line_too_long', async () => {
      const small = await LokiServer.start({ maxLineBytes: 10 });
      try {
        expect((await push(small, { streams: [stream({ d: 'x' }, [t(1), 'é'.repeat(5)])] })).status).toBe(
          204,
        );
        const res = await push(small, { streams: [stream({ d: 'x' }, [t(2), 'é'.repeat(6)])] });

        expect(res.status).toBe(400);
        const reason = await res.text();
        expect(reason).toContain('line_too_long');
        expect(reason).toContain(`Max entry size '10' bytes exceeded for stream '{d="x"}'`);
        expect(reason).toContain(`length '12' bytes`);
        expect(small.entries().map((e) => e.line)).toEqual(['ééééé']);
      } finally {
        await small.close();
      }
    });

    it("defaults maxLineBytes to Loki's 256 KiB", async () => {
      const limit = 256 * 1024;
      const ok = await push(loki, { streams: [stream({ d: 'x' }, [t(1), 'x'.repeat(limit)])] });
      const tooLong = await push(loki, { streams: [stream({ d: 'x' }, [t(2), 'x'.repeat(limit + 1)])] });

      expect([ok.status, tooLong.status]).toEqual([204, 400]);
      expect(await tooLong.text()).toContain('line_too_long');
    });

    it('accepts a gzip-encoded body', async () => {
      const res = await push(loki, gzipSync(JSON.stringify(oneLine)), { 'Content-Encoding': 'gzip' });

      expect(res.status).toBe(204);
      expect(loki.entries()).toEqual([{ labels: { driver: 'shell-runner' }, ts: t(1), line: 'hello' }]);
    });

    it('rejects a corrupt gzip body with 400', async () => {
      const res = await push(loki, JSON.stringify(oneLine), { 'Content-Encoding': 'gzip' });

      expect(res.status).toBe(400);
      expect(await res.text()).toContain('invalid gzip body');
      expect(loki.entries()).toEqual([]);
    });

    it('accepts application/json with parameters', async () => {
      expect((await push(loki, oneLine, { 'Content-Type': 'application/json; charset=utf-8' })).status).toBe(
        204,
      );
    });

    it.each(['text/plain', 'application/x-protobuf'])('rejects Content-Type %s with 415', async (type) => {
      const res = await push(loki, oneLine, { 'Content-Type': type });

      expect(res.status).toBe(415);
      expect(await res.text()).toContain('unsupported Content-Type');
      expect(loki.rejected).toEqual([{ status: 415, reason: expect.stringContaining(type) }]);
      expect(loki.entries()).toEqual([]);
    });

    it('rejects an unsupported Content-Encoding with 415', async () => {
      const res = await push(loki, oneLine, { 'Content-Encoding': 'br' });

      expect(res.status).toBe(415);
      expect(await res.text()).toContain('unsupported Content-Encoding "br"');
    });
  });

  describe('exact duplicates', () => {
    it('ignores an entry whose timestamp and line are already stored, so a retried batch lands once', async () => {
      const batch = { streams: [stream({ d: 'x' }, [t(1), 'a'], [t(2), 'b'])] };

      expect((await push(loki, batch)).status).toBe(204);
      expect((await push(loki, batch)).status).toBe(204);

      expect(loki.entries().map((e) => [e.ts, e.line])).toEqual([
        [t(1), 'a'],
        [t(2), 'b'],
      ]);
      expect(loki.pushes).toBe(2);
    });

    it('keeps an entry that differs in timestamp or line, and ignores one that differs only in metadata', async () => {
      await push(loki, {
        streams: [
          stream({ d: 'x' }, [t(1), 'a'], [t(1), 'b'], [t(2), 'b'], [t(2), 'b', { run_id: 'other' }]),
        ],
      });

      expect(loki.entries().map((e) => [e.ts, e.line, e.metadata])).toEqual([
        [t(1), 'a', undefined],
        [t(1), 'b', undefined],
        [t(2), 'b', undefined],
      ]);
    });

    it('ignores a repeat of any earlier entry of the stream, not only the previous one', async () => {
      await push(loki, { streams: [stream({ d: 'x' }, [t(1), 'a'], [t(2), 'b'], [t(3), 'c'])] });
      await push(loki, { streams: [stream({ d: 'x' }, [t(2), 'b'], [t(1), 'a'], [t(4), 'd'])] });

      expect(loki.entries().map((e) => e.line)).toEqual(['a', 'b', 'c', 'd']);
    });

    it('keeps the same entry in different streams', async () => {
      await push(loki, { streams: [stream({ d: 'x' }, [t(1), 'a']), stream({ d: 'y' }, [t(1), 'a'])] });

      expect(loki.entries({ d: 'x' }).map((e) => e.line)).toEqual(['a']);
      expect(loki.entries({ d: 'y' }).map((e) => e.line)).toEqual(['a']);
    });
  });

  describe('entries', () => {
    it('selects streams by label subset and orders by timestamp, then arrival', async () => {
      await push(loki, { streams: [stream({ d: 'x', level: 'info' }, [t(3), 'x3'], [t(1), 'x1'])] });
      await push(loki, { streams: [stream({ d: 'x', level: 'error' }, [t(1), 'e1'], [t(2), 'e2'])] });
      await push(loki, { streams: [stream({ d: 'y' }, [t(0), 'y0'])] });

      expect(loki.entries().map((e) => e.line)).toEqual(['y0', 'x1', 'e1', 'e2', 'x3']);
      expect(loki.entries({ d: 'x' }).map((e) => e.line)).toEqual(['x1', 'e1', 'e2', 'x3']);
      expect(loki.entries({ d: 'x', level: 'error' }).map((e) => e.line)).toEqual(['e1', 'e2']);
      expect(loki.entries({ d: 'z' })).toEqual([]);
    });
  });

  describe('query_range', () => {
    const info = { driver: 'shell-runner', level: 'info' };
    const error = { driver: 'shell-runner', level: 'error' };

    beforeEach(async () => {
      const res = await push(loki, {
        streams: [
          stream(
            info,
            [t(1), 'a1', { run_id: 'r1' }],
            [t(3), 'a3', { run_id: 'r1' }],
            [t(5), 'a5', { run_id: 'r2' }],
          ),
          stream(error, [t(2), 'b2', { run_id: 'r1' }], [t(6), 'b6']),
          stream({ driver: 'other' }, [t(4), 'c4']),
        ],
      });
      expect(res.status).toBe(204);
    });

    it("answers in Loki's response shape", async () => {
      const res = await queryRange(loki, { query: '{driver="other"}' });

      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({
        status: 'success',
        data: {
          resultType: 'streams',
          result: [{ stream: { driver: 'other' }, values: [[t(4), 'c4']] }],
          stats: {},
        },
      });
    });

    it('matches every = matcher, and returns structured metadata as labels, as Loki does', async () => {
      const res = await queryRange(loki, {
        query: '{ driver = "shell-runner" , level="info" }',
        direction: 'forward',
      });

      expect(((await res.json()) as QueryBody).data.result).toEqual([
        {
          stream: { ...info, run_id: 'r1' },
          values: [
            [t(1), 'a1'],
            [t(3), 'a3'],
          ],
        },
        { stream: { ...info, run_id: 'r2' }, values: [[t(5), 'a5']] },
      ]);
    });

    it('filters on structured metadata with | name="value"', async () => {
      const res = await queryRange(loki, {
        query: '{driver="shell-runner"} | run_id="r1"',
        direction: 'forward',
      });

      expect(((await res.json()) as QueryBody).data.result).toEqual([
        {
          stream: { ...info, run_id: 'r1' },
          values: [
            [t(1), 'a1'],
            [t(3), 'a3'],
          ],
        },
        { stream: { ...error, run_id: 'r1' }, values: [[t(2), 'b2']] },
      ]);
    });

    it('lets filters see stream labels too, with name="" matching an absent label', async () => {
      const res = await queryRange(loki, { query: '{driver="shell-runner"} | level="error" | run_id=""' });

      expect(((await res.json()) as QueryBody).data.result).toEqual([
        { stream: error, values: [[t(6), 'b6']] },
      ]);
    });

    it('accepts back-quoted and escaped values', async () => {
      expect(await lines(await queryRange(loki, { query: '{driver=`other`}' }))).toEqual(['c4']);
      expect(await lines(await queryRange(loki, { query: '{driver="\\u006fther"}' }))).toEqual(['c4']);
    });

    it('applies limit over all streams, newest first by default', async () => {
      const res = await queryRange(loki, { query: '{driver="shell-runner"}', limit: '3' });

      expect(await lines(res)).toEqual(['b6', 'a5', 'a3']);
    });

    it('returns the oldest first with direction=forward (any case), and each stream in that order', async () => {
      expect(
        await lines(
          await queryRange(loki, { query: '{driver="shell-runner"}', limit: '2', direction: 'FORWARD' }),
        ),
      ).toEqual(['a1', 'b2']);
      const backward = await queryRange(loki, {
        query: '{driver="shell-runner"} | run_id="r1"',
        direction: 'backward',
      });
      expect(((await backward.json()) as QueryBody).data.result[0].values).toEqual([
        [t(3), 'a3'],
        [t(1), 'a1'],
      ]);
    });

    it('defaults limit to 100', async () => {
      const many = Array.from({ length: 150 }, (_, i) => [t(100 + i), `m${i}`]);
      await push(loki, { streams: [stream({ driver: 'many' }, ...many)] });

      expect(await lines(await queryRange(loki, { query: '{driver="many"}' }))).toHaveLength(100);
    });

    it('treats start as inclusive and end as exclusive', async () => {
      const res = await queryRange(loki, {
        query: '{driver="shell-runner"}',
        start: t(2),
        end: t(5),
        direction: 'forward',
      });

      expect(await lines(res)).toEqual(['b2', 'a3']);
    });

    it('reads a start or end of 10 digits or fewer as seconds, as Loki does', async () => {
      const res = await queryRange(loki, {
        query: '{driver="shell-runner"}',
        start: '1700000000',
        end: '1700000001',
      });

      expect(await lines(res)).toHaveLength(5);
    });

    it.each<[string, Record<string, string>]>([
      ['an empty query', { query: '' }],
      ['a query without a selector', { query: 'driver="x"' }],
      ['an empty selector', { query: '{}' }],
      ['only empty-compatible matchers', { query: '{driver=""}' }],
      ['a != matcher', { query: '{driver!="x"}' }],
      ['a regex matcher', { query: '{driver=~"x"}' }],
      ['an unquoted value', { query: '{driver=x}' }],
      ['an unterminated selector', { query: '{driver="x"' }],
      ['a line filter', { query: '{driver="x"} |= "boom"' }],
      ['a parser stage', { query: '{driver="x"} | json' }],
      ['trailing text', { query: '{driver="x"} oops' }],
      ['a zero limit', { query: '{driver="x"}', limit: '0' }],
      ['a non-numeric limit', { query: '{driver="x"}', limit: 'ten' }],
      ['an unknown direction', { query: '{driver="x"}', direction: 'sideways' }],
      ['a start that is not an epoch integer', { query: '{driver="x"}', start: 'yesterday' }],
      ['an end before start', { query: '{driver="x"}', start: t(5), end: t(4) }],
    ])('answers 400 in plain text for %s', async (_name, params) => {
      const res = await queryRange(loki, params);

      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect((await res.text()).trim()).not.toBe('');
    });
  });

  it('answers GET /ready with 200 ready, and unknown routes with 404', async () => {
    const ready = await fetch(`${loki.url}/ready`);
    expect([ready.status, (await ready.text()).trim()]).toEqual([200, 'ready']);
    expect((await fetch(`${loki.url}/loki/api/v1/tail`)).status).toBe(404);
  });
});
