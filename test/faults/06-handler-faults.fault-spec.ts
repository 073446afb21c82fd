import { pipelineStepSubject } from '@conveyor-ci/nestjs/protocol';
import { account, expectNothingLost } from './support/accounting';
import { Expectation, stepEvent } from './support/event-feeder';
import { startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';
import type { FaultSpec } from '../../apps/fault-driver/fault.driver';

const DRIVER = 'faults-handler';
const ACK_WAIT_MS = 1000;
const TIMEOUT_MS = 4000;

/** Each kind of trouble, how many of it, and how its message must end. */
const TROUBLE: { label: string; spec: FaultSpec; count: number; expect: Expectation; message?: RegExp }[] = [
  { label: 'throws', spec: { act: 'throw' }, count: 5, expect: 'failure', message: /^asked to throw/ },
  {
    label: 'sleeps past its timeout (aborted)',
    spec: { act: 'sleep', ms: 30_000 },
    count: 3,
    expect: 'failure',
    message: /^timed out after 4000 ms$/,
  },
  {
    label: 'hangs past its timeout (ignores the abort)',
    spec: { act: 'hang', ms: 8000 },
    count: 3,
    expect: 'failure',
    message: /^timed out after 4000 ms$/,
  },
  {
    label: 'runs 3x AckWait, heartbeating',
    spec: { act: 'sleep', ms: 3 * ACK_WAIT_MS },
    count: 3,
    expect: 'success',
  },
  {
    label: 'returns a cycle',
    spec: { act: 'cycle' },
    count: 3,
    expect: 'failure',
    message: /not JSON-encodable/,
  },
  {
    label: 'returns a BigInt',
    spec: { act: 'bigint' },
    count: 3,
    expect: 'failure',
    message: /not JSON-encodable/,
  },
  {
    label: 'returns 1.5 MB (over max_payload)',
    spec: { act: 'big', bytes: 1_500_000 },
    count: 3,
    expect: 'failure',
    message: /above the server's max_payload of 1048576 bytes: data dropped/,
  },
];
const GOOD = 300;
const POISON = 5;

describe('case 6: handlers that throw, hang, outlive AckWait, return what cannot be published; poison messages', () => {
  let env: FaultEnv;
  afterAll(() => env?.stop());

  it('every message ends once, in the right result or dead letter, and the good ones all run', async () => {
    env = await FaultEnv.single();
    const driver = await startDriver('fault', env.servers, DRIVER, {
      CONVEYOR_CONCURRENCY: '4',
      CONVEYOR_ACK_WAIT_MS: String(ACK_WAIT_MS),
      CONVEYOR_RECONCILE_TIMEOUT_MS: String(TIMEOUT_MS),
    });
    await env.waitForConsumer(DRIVER);
    // Trouble spread evenly among the good events, so good ones queue behind every kind of it.
    const plan: { label: string; spec?: FaultSpec; expect: Expectation }[] = [];
    for (let i = 0; i < GOOD; i++) plan.push({ label: 'good', spec: { act: 'succeed' }, expect: 'success' });
    const troubles = TROUBLE.flatMap((t) => Array.from({ length: t.count }, () => t));
    const poison = Array.from({ length: POISON }, () => ({
      label: 'poison (not JSON)',
      expect: 'dead-letter' as const,
    }));
    [...troubles, ...poison].forEach((t, i, all) =>
      plan.splice(Math.floor(((i + 1) * GOOD) / (all.length + 1)) + i, 0, t),
    );
    const startedAt = Date.now();
    const labels = new Map<string, string>();
    for (const item of plan) {
      if (!item.spec) {
        await env.feeder.publishRaw(pipelineStepSubject(DRIVER, 'fault'), '{"event":"create","payload":', {
          expect: 'dead-letter',
          label: item.label,
        });
        continue;
      }
      const entry = await env.feeder.publish(stepEvent(DRIVER, 'fault', item.spec), item.expect, item.label);
      labels.set(entry.runId!, item.label);
    }
    const outcome = await account(env, DRIVER, '6 handler faults and poison messages', startedAt, {
      timeoutMs: 120_000,
    });
    outcome.row.notes =
      `fault driver, concurrency 4, AckWait 1 s, timeout 4 s; ${GOOD} good events mixed with ` +
      `${TROUBLE.map((t) => `${t.label} (${t.count})`).join(', ')}, poison (${POISON}); ` +
      'no message delivered twice';
    expectNothingLost(outcome);
    // "Runs once": no AckWait expired, even for runs three times longer than it.
    expect(outcome.row.redelivered).toBe(0);
    for (const trouble of TROUBLE.filter((t) => t.message)) {
      const messages = [...labels]
        .filter(([, label]) => label === trouble.label)
        .map(([runId]) => outcome.results.get(runId)![0].message);
      expect({ trouble: trouble.label, messages }).toEqual({
        trouble: trouble.label,
        messages: messages.map(() => expect.stringMatching(trouble.message!)),
      });
    }
    for (const entry of env.feeder.ledger.filter((e) => e.expect === 'dead-letter')) {
      expect(outcome.deadLetters.get(entry.seq)?.reason).toMatch(/^undecodable: message is not valid JSON/);
    }
    expect(await driver.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
