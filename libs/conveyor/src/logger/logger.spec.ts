import { limitLine, maskSecrets } from './line-limits';
import { createLineStream } from './line-stream';
import { testRunBinding } from './log-lines.spec-support';
import { advanceClock, nowUs, formatRfc3339Nano, formatUnixNanos, formatUnixSeconds } from './run-scope';

const binding = () => testRunBinding();

describe('run timestamps', () => {
  it('are strictly increasing, so lines logged within one millisecond keep their order', () => {
    const run = binding();
    const stamps = Array.from({ length: 5000 }, () => {
      advanceClock(run);
      return { us: run.clockUs, subNs: run.clockSubNs };
    });
    const ns = stamps.map((t) => BigInt(formatUnixNanos(t.us, t.subNs)));
    for (let i = 1; i < ns.length; i++) expect(ns[i] > ns[i - 1]).toBe(true);
    // Many lines share a millisecond, and the formatted (server key) order is the log order too.
    const ms = new Set(ns.map((n) => n / 1_000_000n));
    expect(ms.size).toBeLessThan(stamps.length);
    const formatted = stamps.map((t) => formatRfc3339Nano(t.us, t.subNs));
    expect([...formatted].sort()).toEqual(formatted);
    // Anchored to the wall clock.
    expect(Math.abs(stamps[0].us / 1000 - Date.now())).toBeLessThan(5000);
  });

  it('follow the wall clock within a millisecond, also later on', async () => {
    for (let i = 0; i < 3; i++) {
      const before = Date.now() * 1000;
      const us = nowUs();
      const after = Date.now() * 1000;
      // Date.now() is whole milliseconds: the anchor may be up to 1 ms behind the true time.
      expect(us).toBeGreaterThanOrEqual(before - 1000);
      expect(us).toBeLessThan(after + 1000);
      await new Promise((resolve) => setTimeout(resolve, 120));
    }
  });

  it('are unique across runs of the process too (Loki keeps one of two equal lines at one stamp)', () => {
    const a = binding();
    const b = binding();
    const at = nowUs() + 10_000_000; // ahead of the clock: every line bumps
    const stamps = new Set<string>();
    for (let i = 0; i < 1500; i++) {
      for (const run of [a, b]) {
        advanceClock(run, at);
        stamps.add(formatUnixNanos(run.clockUs, run.clockSubNs));
      }
    }
    expect(stamps.size).toBe(3000);
    // 999 ns within a µs, then the next µs.
    expect(b.clockUs).toBe(at + 2);
  });

  it('format as RFC 3339 UTC with 9 fraction digits, unix seconds or unix nanoseconds', () => {
    const us = 1_795_000_000_123_456;
    expect(formatRfc3339Nano(us, 789)).toBe('2026-11-18T11:06:40.123456789Z');
    expect(formatRfc3339Nano(1_795_000_000_000_000, 7)).toBe('2026-11-18T11:06:40.000000007Z');
    expect(formatUnixSeconds(us)).toBe('1795000000');
    expect(formatUnixNanos(us, 789)).toBe('1795000000123456789');
    expect(formatUnixNanos(us, 7)).toBe('1795000000123456007');
  });
});

describe('line limits and masking', () => {
  it('masks every secret, the longest first', () => {
    expect(maskSecrets('token=abc123 and abc, abc123abc', ['abc', 'abc123'])).toBe(
      'token=*** and ***, ******',
    );
    expect(maskSecrets('nothing here', ['', 'zzz'])).toBe('nothing here');
  });

  it('splits an oversize line into pieces within the limit, never inside a character', () => {
    const line = 'é'.repeat(50) + '🚀'.repeat(30) + 'x'.repeat(70);
    const pieces = limitLine(line, 64, 'split');
    expect(pieces.join('')).toBe(line);
    for (const piece of pieces) {
      expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(64);
      expect(piece).not.toContain('\uFFFD');
    }
    expect(limitLine('short', 64, 'split')).toEqual(['short']);
  });

  it('truncates an oversize line within the limit and says how much was cut', () => {
    const [cut] = limitLine('a'.repeat(200), 64, 'truncate');
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(64);
    expect(cut).toMatch(/^a+ …\[truncated \d+ bytes\]$/);
    const kept = cut.indexOf(' …');
    expect(cut).toBe(`${'a'.repeat(kept)} …[truncated ${200 - kept} bytes]`);
  });
});

describe('createLineStream', () => {
  it('splits chunks into lines across boundaries, CRLF and multi-byte characters included', async () => {
    const lines: string[] = [];
    const stream = createLineStream((l) => lines.push(l));
    const bytes = Buffer.from('one\r\ntwo\nthr€e\nlast without newline');
    // Cut inside the 3-byte € on purpose.
    const cut = bytes.indexOf(Buffer.from('€')) + 1;
    stream.write(bytes.subarray(0, 5));
    stream.write(bytes.subarray(5, cut));
    stream.write(bytes.subarray(cut));
    await new Promise<void>((resolve) => stream.end(resolve));
    expect(lines).toEqual(['one', 'two', 'thr€e', 'last without newline']);
  });

  it('decodes ASCII and non-ASCII chunks alike, and takes strings too', async () => {
    const lines: string[] = [];
    const stream = createLineStream((l) => lines.push(l));
    stream.write(Buffer.from('plain ascii\nmore ascii\n'));
    stream.write(Buffer.from('latin1 é and € and 🚀\n'));
    stream.write('a string chunk\r\n');
    await new Promise<void>((resolve) => stream.end(resolve));
    expect(lines).toEqual(['plain ascii', 'more ascii', 'latin1 é and € and 🚀', 'a string chunk']);
  });

  it('flushes a line without a newline at 1 MiB, cut between characters, also when it is not UTF-8', async () => {
    const lines: string[] = [];
    const stream = createLineStream((l) => lines.push(l));
    const euros = Buffer.from('€'.repeat(400_000)); // 1.2 MB, no newline
    stream.write(euros);
    const garbage = Buffer.alloc(1100 * 1024, 0x80); // continuation bytes only: no boundary anywhere
    stream.write(Buffer.from('\n'));
    stream.write(garbage);
    await new Promise<void>((resolve) => stream.end(resolve));
    expect(lines[0]).toBe('€'.repeat(Math.floor((1024 * 1024) / 3)));
    expect(lines[1]).toBe('€'.repeat(400_000 - Math.floor((1024 * 1024) / 3)));
    expect(lines.length).toBe(4);
    expect(lines.slice(2).reduce((n, l) => n + l.length, 0)).toBe(garbage.length); // each byte one U+FFFD
  });
});

describe('formatRfc3339Nano across seconds', () => {
  it('formats each instant on its own, whatever was formatted before', () => {
    const at = (iso: string, us: number) => Date.parse(iso) * 1000 + us;
    expect(formatRfc3339Nano(at('2026-12-01T10:00:00.000Z', 999_999), 999)).toBe(
      '2026-12-01T10:00:00.999999999Z',
    );
    expect(formatRfc3339Nano(at('2026-12-01T10:00:01.000Z', 0), 1)).toBe('2026-12-01T10:00:01.000000001Z');
    expect(formatRfc3339Nano(at('2026-12-01T10:00:00.000Z', 0), 5)).toBe('2026-12-01T10:00:00.000000005Z');
    expect(formatRfc3339Nano(at('1999-12-31T23:59:59.000Z', 0), 0)).toBe('1999-12-31T23:59:59.000000000Z');
  });
});
