import { readFileSync } from 'node:fs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { sleep } from '@conveyor-ci/testing';
import { recordRow } from './support/fault-rows';
import { stepEvent } from './support/event-feeder';
import { startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';
import { storedResults } from './support/stored-records';

const DRIVER = 'faults-flood';
const QUEUED = Number(process.env.CONVEYOR_FAULT_FLOOD_EVENTS ?? 100_000);
const RUN_MS = 60_000;
const CONCURRENCY = 8;
const HANDLER_MS = 50;
/** Resident memory the driver may use under the flood, whatever the backlog. */
const RSS_LIMIT_MB = 300;

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe('case 9: flood, 100,000 queued events, 50 ms handler, concurrency 8, for 60 s', () => {
  let env: FaultEnv;
  afterAll(() => env?.stop());

  it('keeps its memory bounded, and loses nothing when stopped', async () => {
    env = await FaultEnv.single();
    const settings = { CONVEYOR_CONCURRENCY: String(CONCURRENCY) };
    // The durable consumer first (interest retention), then the backlog while no replica runs.
    const creator = await startDriver('fault', env.servers, DRIVER, settings);
    await env.waitForConsumer(DRIVER);
    expect(await creator.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    await env.feeder.feed(QUEUED, () => stepEvent(DRIVER, 'fault', { act: 'sleep', ms: HANDLER_MS }), {
      window: 256,
    });
    const driver = await startDriver('fault', env.servers, DRIVER, settings);
    const startedAt = Date.now();
    const samples: number[] = [];
    while (Date.now() - startedAt < RUN_MS) {
      samples.push(rssMb(driver.process.pid!));
      await sleep(1000);
    }
    expect(await driver.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const ranFor = Date.now() - startedAt;
    const results = await storedResults(env.jsm);
    const info = await env.jsm.consumers.info(MESSAGES_STREAM, DRIVER);
    // What is still in the stream for the consumer: never delivered, or waiting for redelivery.
    const remaining = info.num_pending + info.num_ack_pending + info.num_redelivered;
    const runIds = new Set(env.feeder.ledger.map((e) => e.runId));
    const stored = [...results.keys()].filter((id) => runIds.has(id)).length;
    const storedDuplicates = [...results.values()].reduce((n, list) => n + list.length - 1, 0);
    const rate = stored / (ranFor / 1000);
    recordRow({
      case: '9 flood: 100,000 queued, stopped after 60 s',
      published: QUEUED,
      resultsStored: [...results.values()].reduce((n, l) => n + l.length, 0),
      reconciled: stored,
      deadLettered: 0,
      skipped: 0,
      redelivered: Math.max(0, info.delivered.consumer_seq - stored - remaining),
      wireDuplicates: env.wire.duplicates,
      storedDuplicates,
      lost: QUEUED - stored - remaining,
      longestGapMs: env.wire.longestGap(startedAt + 5000),
      drainMs: ranFor,
      notes:
        `fault driver, concurrency ${CONCURRENCY}, ${HANDLER_MS} ms handler: ${rate.toFixed(0)} runs/s ` +
        `(ideal ${(CONCURRENCY * 1000) / HANDLER_MS}); RSS ${Math.min(...samples).toFixed(0)}-${Math.max(...samples).toFixed(0)} MB ` +
        `over ${samples.length} samples; ${remaining} left in the stream at the stop (not lost: the next start takes them)`,
    });
    expect(QUEUED - stored - remaining).toBe(0);
    expect(storedDuplicates).toBe(0);
    // Bounded whatever the backlog: the driver holds only what its slots can take (V8 grows its heap
    // lazily under allocation, so the samples rise at first: the bound is absolute).
    expect(Math.max(...samples)).toBeLessThan(RSS_LIMIT_MB);
  });
});
