/**
 * Logger scenario (a): the baseline, a line-at-a-time logger as the upstream Go runtime writes one,
 * in Node. Per line: the Conveyor Log JSON, a JetStream publish to `logs.<runId>` whose PubAck is
 * awaited, then the same bytes on core `live.logs.<runId>.<driver>`. Then the run's result, awaited
 * too. Nothing else, so whatever the framework does differently is what the comparison measures.
 */
import { connect } from 'nats';
// Types only: the baseline must not load Nest or the framework at run time.
import type { ConveyorLog, PipelineEvent } from '@conveyor-ci/nestjs';
import { announceConsuming, failChild, now, onStop, readChildConfig, report } from './child-protocol';
import { logLine } from './log-lines';

// Literals rather than the framework's constants, for the same reason as the type-only import.
const RESULT_SUBJECT = 'pipelines.driver.result';

async function main(): Promise<void> {
  const config = readChildConfig();
  const logging = config.logging;
  if (!logging) throw new Error('log-loop-driver needs the logging config');
  const nc = await connect({ servers: config.servers });
  const js = nc.jetstream();
  onStop(() => nc.close());
  const encoder = new TextEncoder();
  const stored = `logs.${logging.runId}`;
  const live = `live.logs.${logging.runId}.${config.driver}`;
  announceConsuming();

  let loggerMs = 0;
  const startedAt = now();
  for (let i = 1; i <= logging.lines; i++) {
    // The text exists before the call, as a handler's line does; only the logging is timed.
    const text = logLine(i, logging.lines);
    const t0 = performance.now();
    const log: ConveyorLog = {
      runid: logging.runId,
      driver: config.driver,
      pipeline: logging.pipeline,
      // Go's format: unix seconds (the framework's default is RFC 3339 with ns, 20 bytes longer).
      timestamp: String(Math.floor(Date.now() / 1000)),
      message: text,
    };
    const bytes = encoder.encode(JSON.stringify(log));
    // One stored line per round trip: the next line waits for this PubAck, as Go's js.Publish does.
    await js.publish(stored, bytes);
    nc.publish(live, bytes);
    loggerMs += performance.now() - t0;
  }
  const endedAt = now();
  const memory = process.memoryUsage();
  await report({
    type: 'logged',
    startedAt,
    endedAt,
    lines: logging.lines,
    loggerMs,
    rssMiB: memory.rss / 2 ** 20,
    heapUsedMiB: memory.heapUsed / 2 ** 20,
  });

  // The result as the server expects it; the resource is a stand-in (nothing reads it in the bench).
  const result: PipelineEvent = {
    event: 'driver.result',
    run_id: logging.runId,
    resource: { id: logging.runId, name: 'bench-logger', resource: 'pipeline', metadata: {}, spec: {} },
    driverresult: { success: true, message: '', data: null, driver: config.driver },
  };
  await js.publish(RESULT_SUBJECT, encoder.encode(JSON.stringify(result)));
}

main().catch(failChild);
