import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeGoJson, pipelineStepSubject } from '@conveyor-ci/nestjs/protocol';
import { makeResource } from '@conveyor-ci/testing';
import { account, expectNothingLost } from './support/accounting';
import { Expectation, shellStep, stepEvent } from './support/event-feeder';
import { startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';

const DRIVER = 'faults-input';
const SUBJECT = pipelineStepSubject(DRIVER, 'pipeline');

/** A DriverMessage with one field replaced (or removed, with `undefined`). */
function messageWith(fields: Record<string, unknown>): string {
  const resource = makeResource({
    name: `bad-${randomUUID().slice(0, 8)}`,
    resource: 'pipeline',
    pipeline: 'faults',
    spec: { steps: [{ name: 'work', run: 'true' }] },
  });
  const message: Record<string, unknown> = {
    event: 'create',
    payload: encodeGoJson(resource),
    id: randomBytes(12).toString('hex'),
    run_id: randomUUID(),
  };
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) delete message[key];
    else message[key] = value;
  }
  return JSON.stringify(message);
}

const runIdOf = (raw: string) => (JSON.parse(raw) as { run_id?: string }).run_id;

/** Each bad input, how it must end, and what the dead-letter record must say (when it gets one). */
const BAD_INPUT: {
  label: string;
  body: () => string | Uint8Array;
  expect: Expectation;
  reason?: RegExp;
  readableRunId?: boolean;
}[] = [
  {
    label: 'invalid JSON',
    body: () => '{"event":"create","payload":',
    expect: 'dead-letter',
    reason: /not valid JSON/,
  },
  { label: 'a JSON array', body: () => '[1,2,3]', expect: 'dead-letter', reason: /not a JSON object/ },
  { label: 'an empty body', body: () => '', expect: 'dead-letter', reason: /not valid JSON/ },
  {
    label: 'invalid UTF-8',
    body: () => Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]),
    expect: 'dead-letter',
    reason: /not valid UTF-8/,
  },
  {
    label: 'payload a number',
    body: () => messageWith({ payload: 42 }),
    expect: 'dead-letter',
    reason: /"payload" is missing or neither a string nor an object/,
    readableRunId: true,
  },
  {
    label: 'payload a non-JSON string',
    body: () => messageWith({ payload: 'not json' }),
    expect: 'dead-letter',
    reason: /payload is not valid JSON/,
    readableRunId: true,
  },
  {
    label: 'run id missing',
    body: () => messageWith({ run_id: undefined }),
    expect: 'dead-letter',
    reason: /has no "run_id"/,
  },
  {
    label: 'run id not subject-safe',
    body: () => messageWith({ run_id: 'run id.with*wildcards' }),
    expect: 'dead-letter',
    reason: /"run_id" is not a subject-safe string/,
  },
  {
    label: 'id missing',
    body: () => messageWith({ id: undefined }),
    expect: 'failure',
    reason: /"id" is missing/,
    readableRunId: true,
  },
  {
    label: 'event not a string',
    body: () => messageWith({ event: 7 }),
    expect: 'failure',
    reason: /"event" is missing or not a string/,
    readableRunId: true,
  },
  {
    label: 'an event the handler does not know',
    body: () => messageWith({ event: 'frobnicate' }),
    expect: 'skipped',
    readableRunId: true,
  },
  {
    label: 'a spec the handler rejects',
    body: () => encodeGoJson(stepEvent(DRIVER, 'pipeline', { steps: [] }).message),
    expect: 'failure',
    readableRunId: true,
  },
];

describe('case 11: bad input, each followed by a good event that must succeed', () => {
  let env: FaultEnv;
  let dir: string;
  afterAll(async () => {
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('dead-letters or fails what it cannot run, saying why, and keeps running the good events', async () => {
    dir = mkdtempSync(join(tmpdir(), 'faults-input-'));
    env = await FaultEnv.single();
    const driver = await startDriver('reference', env.servers, DRIVER);
    await env.waitForConsumer(DRIVER);
    const startedAt = Date.now();
    const good = () => env.feeder.publish(shellStep(DRIVER, 'true'), 'success', 'good (after bad input)');
    const reasons = new Map<number, RegExp>();
    for (const bad of BAD_INPUT) {
      const body = bad.body();
      const runId = bad.readableRunId && typeof body === 'string' ? runIdOf(body) : undefined;
      const entry = await env.feeder.publishRaw(SUBJECT, body, {
        expect: bad.expect,
        label: bad.label,
        runId,
      });
      if (bad.reason) reasons.set(entry.seq, bad.reason);
      await good();
    }
    // A `delete` (sent by newer Conveyor versions) must not run the pipeline's steps.
    const marker = join(dir, 'delete-ran');
    await env.feeder.publish(shellStep(DRIVER, `touch ${marker}`, 'delete'), 'skipped', 'a delete event');
    await good();
    // A 1 MB payload (under the 1 MiB max_payload): runs, and its result (the resource is in it) fits.
    const big = stepEvent(DRIVER, 'pipeline', {
      steps: [{ name: 'work', run: 'true' }],
      notes: 'x'.repeat(1_000_000),
    });
    await env.feeder.publish(big, 'success', 'a 1 MB payload');
    await good();

    const outcome = await account(env, DRIVER, '11 bad input, each followed by a good event', startedAt);
    outcome.row.notes =
      `reference driver; ${BAD_INPUT.map((b) => b.label).join(', ')}, a delete event, a 1 MB payload; ` +
      'each followed by a good event';
    expectNothingLost(outcome);
    for (const [seq, reason] of reasons) expect(outcome.deadLetters.get(seq)?.reason).toMatch(reason);
    expect(existsSync(marker)).toBe(false);
    // The driver says what was wrong with each in its own log too, not only in the records.
    for (const reason of reasons.values())
      await driver.process.waitForLine((l) => l.json?.level === 50 && reason.test(String(l.json?.msg)), 5000);
    // And that the delete was skipped: the pipeline will not advance past this step.
    await driver.process.waitForLine((l) => /skips event "delete"/.test(String(l.json?.msg)), 5000);
    expect(await driver.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
