import type { LogEntry } from './log-entry';
import { RunBinding, advanceClock, createRunBinding } from './run-scope';

/** A run binding for tests: a direct resource event's, with `fields` changed. */
export function testRunBinding(fields: Partial<Parameters<typeof createRunBinding>[0]> = {}): RunBinding {
  return createRunBinding({
    runId: 'r',
    driver: 'd',
    pipeline: '',
    event: 'create',
    messageId: 'm',
    delivery: 1,
    resource: 'x',
    resourceType: 'pipeline',
    ...fields,
  });
}

/** The next line of `binding`'s run, numbered and stamped as the shipper does it. */
export function nextLogLine(binding: RunBinding, message: string): LogEntry {
  binding.seq += 1;
  advanceClock(binding);
  return {
    binding,
    level: 'info',
    message,
    bytes: Buffer.byteLength(message),
    fields: undefined,
    timeUs: binding.clockUs,
    timeSubNs: binding.clockSubNs,
    seq: binding.seq,
    late: false,
    traceId: undefined,
    spanId: undefined,
  };
}
