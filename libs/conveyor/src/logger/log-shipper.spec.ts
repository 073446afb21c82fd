import { ConsoleLogger, Logger } from '@nestjs/common';
import { resolveConveyorConfig } from '../module/conveyor.options';
import type { ConveyorModuleOptions } from '../module/conveyor.options';
import type { LogEntry, LogSink } from './log-entry';
import { emptySinkStats } from './log-entry';
import { testRunBinding } from './log-lines.spec-support';
import { LogShipper, MAX_PROCESS_MASKS } from './log-shipper';
import type { LogFields } from './run-logger';

/** A sink that keeps what it was handed, serialised at once (the shipper reuses its entry). */
class KeptLines implements LogSink {
  readonly name = 'kept';
  readonly stats = emptySinkStats();
  readonly fields: (LogFields | undefined)[] = [];
  readonly json: string[] = [];
  write(entry: LogEntry): void {
    this.fields.push(entry.fields);
    this.json.push(JSON.stringify({ message: entry.message, fields: entry.fields }));
  }
  async close(): Promise<void> {}
}

/** Every line Nest's Logger prints while the test runs (the process log without nestjs-pino). */
function captureProcessLog(): string[] {
  const lines: string[] = [];
  const keep = (message: unknown) => lines.push(String(message));
  Logger.overrideLogger({ log: keep, warn: keep, error: keep, debug: keep, verbose: keep });
  return lines;
}

function shipperWith(options: Partial<ConveyorModuleOptions> = {}, env: Record<string, string> = {}) {
  const config = resolveConveyorConfig(
    { driverName: 'd', servers: 'nats://127.0.0.1:4222', ...options },
    env,
  );
  const shipper = new LogShipper(config);
  const kept = new KeptLines();
  // The NATS sinks need a connection (integration tests cover them): one sink that keeps lines here.
  (shipper as unknown as { sinks: LogSink[] }).sinks.push(kept);
  return { shipper, kept, config };
}

afterEach(() => Logger.overrideLogger(new ConsoleLogger()));

describe('masking of fields', () => {
  it('hides a masked value at any depth, for the sinks and the process log', () => {
    const out = captureProcessLog();
    const { shipper, kept } = shipperWith();
    const run = testRunBinding();
    shipper.loggerFor(run).mask('stepTokenABC');
    shipper.write(run, 'info', 'x', {
      env: { TOKEN: 'stepTokenABC', HOME: '/root' },
      argv: ['--token', 'stepTokenABC', { deeper: ['Bearer: stepTokenABC'] }],
      attempt: 2,
    });
    expect(kept.fields[0]).toEqual({
      env: { TOKEN: '***', HOME: '/root' },
      argv: ['--token', '***', { deeper: ['Bearer: ***'] }],
      attempt: 2,
    });
    expect(out).toHaveLength(1);
    expect(out[0]).toContain('env={"TOKEN":"***","HOME":"/root"}');
    expect([...kept.json, ...out].join('\n')).not.toContain('stepTokenABC');
  });

  it('applies the configured secrets and their patterns (URL userinfo, Bearer) at any depth', () => {
    const out = captureProcessLog();
    const { shipper, kept } = shipperWith(
      {},
      { CONVEYOR_NATS_USER: 'u', CONVEYOR_NATS_PASSWORD: 'natspw99' },
    );
    const run = testRunBinding();
    shipper.write(run, 'warn', 'request failed', {
      request: { url: 'https://bob:hunter2@api.example', headers: { authorization: 'Bearer eyJ.x.y' } },
      tried: [{ with: 'natspw99' }],
    });
    expect(kept.fields[0]).toEqual({
      request: { url: 'https://bob:***@api.example', headers: { authorization: 'Bearer ***' } },
      tried: [{ with: '***' }],
    });
    const everything = [...kept.json, ...out].join('\n');
    for (const secret of ['hunter2', 'eyJ.x.y', 'natspw99']) expect(everything).not.toContain(secret);
  });

  it('serialises an Error with its name, message, stack and cause, masked', () => {
    const out = captureProcessLog();
    const { shipper, kept } = shipperWith();
    const run = testRunBinding();
    shipper.loggerFor(run).mask('stepTokenABC');
    const err = Object.assign(
      new TypeError('login failed for stepTokenABC', { cause: new Error('401 for stepTokenABC') }),
      { code: 'E_LOGIN' },
    );
    shipper.write(run, 'error', 'step failed', { err, nested: { errors: [new RangeError('deep')] } });
    const fields = kept.fields[0] as { err: Record<string, unknown>; nested: { errors: unknown[] } };
    expect(fields.err).toEqual({
      name: 'TypeError',
      message: 'login failed for ***',
      stack: expect.stringMatching(/^TypeError: login failed for \*\*\*\n\s+at /),
      code: 'E_LOGIN',
      cause: {
        name: 'Error',
        message: '401 for ***',
        stack: expect.stringMatching(/^Error: 401 for \*\*\*\n\s+at /),
      },
    });
    expect(fields.nested.errors[0]).toMatchObject({ name: 'RangeError', message: 'deep' });
    expect(out[0]).toMatch(
      / err=\{"name":"TypeError","message":"login failed for \*\*\*","stack":"TypeError: /,
    );
    expect([...kept.json, ...out].join('\n')).not.toContain('stepTokenABC');
  });

  it('survives a cycle, and bounds a huge or deep value instead of walking all of it', () => {
    const out = captureProcessLog();
    const { shipper, kept } = shipperWith();
    const run = testRunBinding();
    const cyclic: Record<string, unknown> = { name: 'a' };
    cyclic.self = cyclic;
    const huge = Array.from({ length: 1_000_000 }, (_, i) => ({ i }));
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 100; i++) deep = { down: deep };
    const started = performance.now();
    shipper.write(run, 'info', 'odd values', { cyclic, huge, deep, big: 10n });
    expect(performance.now() - started).toBeLessThan(200);
    const fields = kept.fields[0] as Record<string, unknown>;
    expect(fields.cyclic).toEqual({ name: 'a', self: '[Circular]' });
    const shown = fields.huge as unknown[];
    expect(shown.length).toBeLessThan(2000);
    expect(shown.at(-1)).toMatch(/^\[… \d+ more\]$/);
    expect(JSON.stringify(fields.deep)).toContain('"[Object]"');
    expect(fields.big).toBe('10');
    expect(out[0]).toContain('cyclic={"name":"a","self":"[Circular]"}');
  });

  it('hands on fields that need nothing done as they are (no copy per line)', () => {
    captureProcessLog();
    const plain = { step: 'build', stream: 'stdout', attempt: 1, ok: true, none: null };
    const { shipper, kept } = shipperWith();
    const run = testRunBinding();
    shipper.write(run, 'info', 'a', plain);
    // With a masked value that the fields do not contain, they are still not copied.
    shipper.loggerFor(run).mask('stepTokenABC');
    shipper.write(run, 'info', 'b', plain);
    const nested = { step: 'build', env: { HOME: '/root' }, list: [1, 'two'] };
    shipper.write(run, 'info', 'c', nested);
    expect(kept.fields[0]).toBe(plain);
    expect(kept.fields[1]).toBe(plain);
    expect(kept.fields[2]).toBe(nested);
  });
});

describe('mask() outside a run', () => {
  it('hides the value process-wide from then on: lines in and outside runs, results, the redactor', () => {
    const out = captureProcessLog();
    const { shipper, kept, config } = shipperWith();
    shipper.loggerFor(undefined).mask('procSecret42');
    shipper.write(undefined, 'info', 'boot with procSecret42', { cfg: { key: 'procSecret42' } });
    const run = testRunBinding();
    shipper.write(run, 'info', 'run sees procSecret42', { key: 'procSecret42' });
    expect(out.join('\n')).not.toContain('procSecret42');
    expect(out[0]).toBe('boot with *** cfg={"key":"***"}');
    expect(kept.json[0]).toBe('{"message":"run sees ***","fields":{"key":"***"}}');
    expect(shipper.maskText(undefined, 'result: procSecret42')).toBe('result: ***');
    expect(config.redactor.redact('health: procSecret42')).toBe('health: ***');
  });

  it('says so, rather than slowing every line without end, past MAX_PROCESS_MASKS values', () => {
    const { shipper } = shipperWith();
    const outside = shipper.loggerFor(undefined);
    const values = Array.from({ length: MAX_PROCESS_MASKS }, (_, i) => `value-${i}`);
    outside.mask(...values);
    outside.mask(...values); // the same values again add nothing
    expect(() => outside.mask('one-too-many')).toThrow(
      /DriverLogger\.mask\(\) outside a run: more than 1000 values .* inside its run \(ctx\.logger\.mask\(\)\)/,
    );
  });
});
