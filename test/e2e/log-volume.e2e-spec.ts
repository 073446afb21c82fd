import { readFileSync } from 'node:fs';
import {
  ConveyorTestEnv,
  DriverProcess,
  isProcessAlive,
  makeResource,
  publishDriverMessage,
  sleep,
  waitForConsumer,
} from '@conveyor-ci/testing';
import { type PipelineEvent } from '@conveyor-ci/nestjs';
import { LOGS_ENGINE_STREAM } from '@conveyor-ci/nestjs/internal';
import { startReferenceDriver } from '../support/reference-driver';

const DRIVER = 'shell-runner-volume';
/** The logger's total budget for this test (`CONVEYOR_LOG_MAX_BYTES`; the default is 64 MiB). */
const BUDGET_MB = 32;
/**
 * Peak RSS may grow by the budget plus what V8 leaves uncollected under a 192 MB heap: frame
 * buffers written to the socket and not yet collected, mostly. Measured on a 95 MB baseline:
 * +78 and +81 MB with 32 MiB, +104 MB with 64 MiB (2026-12-01, queued messages kept as bytes and
 * shipped about half again as fast as before; +60 and +79 MB then; +115 and +152 MB before queued
 * lines became columns and step output was split on bytes). Before byte budgets the same run
 * reached 629 MB, and died of OOM at 160 MB.
 */
const HEADROOM_MB = BUDGET_MB + 72;

let env: ConveyorTestEnv;
let driver: DriverProcess;

beforeAll(async () => {
  env = await ConveyorTestEnv.start();
  // The heap is capped below what 200 MB of output would take if anything buffered it all.
  driver = await startReferenceDriver(env, DRIVER, {
    NODE_OPTIONS: '--max-old-space-size=192',
    CONVEYOR_LOG_MAX_BYTES: String(BUDGET_MB * 1024 * 1024),
  });
  await waitForConsumer(env.jsm, DRIVER);
});

afterAll(async () => {
  await driver?.stop('SIGTERM');
  await env?.stop();
});

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

it('ships 200 MB of step output with bounded memory and exact accounting', async () => {
  await sleep(500);
  const baseline = rssMb(driver.pid!);
  const sent = await publishDriverMessage(env.js, {
    driver: DRIVER,
    resource: makeResource({
      name: 'flood',
      resource: 'pipeline',
      pipeline: 'volume',
      spec: {
        steps: [
          {
            name: 'flood',
            run: "yes 'a line of step output, about a hundred bytes long, repeated until two hundred MB' | head -c 200000000",
          },
        ],
      },
    }),
  });
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(driver.pid!))), 50);
  let result: PipelineEvent;
  try {
    result = await env.results.waitForRun(sent.message.run_id, 120_000);
  } finally {
    clearInterval(sampler);
  }

  const data = result.driverresult.data as {
    log: { lines: number; dropped: number };
    steps: { durationMs: number }[];
  };
  expect(result.driverresult.success).toBe(true);
  expect(isProcessAlive(driver.pid!)).toBe(true); // no OOM
  expect(peak - baseline).toBeLessThan(HEADROOM_MB);
  // Exact accounting: every line of the run (marker lines included) is stored or counted dropped.
  const state = (await env.jsm.streams.info(LOGS_ENGINE_STREAM)).state;
  const last = await env.jsm.streams.getMessage(LOGS_ENGINE_STREAM, { seq: state.last_seq });
  const finalMarker = JSON.parse(new TextDecoder().decode(last.data)).message.startsWith('[conveyor] ')
    ? 1
    : 0;
  expect(data.log.dropped).toBeGreaterThan(0);
  expect(state.messages).toBe(data.log.lines - data.log.dropped + finalMarker);
});
