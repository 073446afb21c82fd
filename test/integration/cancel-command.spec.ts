import { RUN_CANCELS_BUCKET, cancelSubject } from '@conveyor-ci/nestjs/internal';
import { eventually } from '@conveyor-ci/testing';
import { runCancelCommand } from '../../apps/cancel/cancel-command';
import { useControlPlane } from '../support/control-plane-suite';

/** `npm run cancel -- <runId> [reason]`: the run control's cancel, without the nats CLI (issue 26). */
const suite = useControlPlane();

function output() {
  const lines: string[] = [];
  return { lines, write: (line: string) => lines.push(line) };
}

describe('npm run cancel', () => {
  it('publishes the cancel for live runs and remembers it for runs not started yet', async () => {
    const runId = '0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10';
    const seen: string[] = [];
    suite.nc.subscribe(cancelSubject(runId), {
      callback: (_e, m) => seen.push(new TextDecoder().decode(m.data)),
    });
    await suite.nc.flush();
    const out = output();
    const code = await runCancelCommand(
      [runId, 'stop', 'it'],
      { CONVEYOR_NATS_URL: suite.plane.natsUrl },
      out.write,
    );
    expect(code).toBe(0);
    await eventually(() => seen.length === 1, 'the cancel request');
    expect(JSON.parse(seen[0])).toMatchObject({ run_id: runId, reason: 'stop it' });
    const kv = await suite.nc.jetstream().views.kv(RUN_CANCELS_BUCKET);
    expect(JSON.parse(new TextDecoder().decode((await kv.get(runId))!.value))).toMatchObject({
      run_id: runId,
    });
    expect(out.lines.join('\n')).toContain(`cancel requested for run ${runId}`);
  });

  it('gives a default reason', async () => {
    const runId = 'run-without-reason';
    const seen: string[] = [];
    suite.nc.subscribe(cancelSubject(runId), {
      callback: (_e, m) => seen.push(new TextDecoder().decode(m.data)),
    });
    await suite.nc.flush();
    expect(await runCancelCommand([runId], { CONVEYOR_NATS_URL: suite.plane.natsUrl }, () => undefined)).toBe(
      0,
    );
    await eventually(() => seen.length === 1, 'the cancel request');
    expect(JSON.parse(seen[0]).reason).toBe('cancelled from npm run cancel');
  });

  it('explains its usage without a run id, and a run id that is no subject token, with exit 2', async () => {
    const out = output();
    expect(await runCancelCommand([], {}, out.write)).toBe(2);
    expect(out.lines.join('\n')).toMatch(/usage: npm run cancel -- <runId> \[reason\]/);
    const bad = output();
    expect(await runCancelCommand(['a.b'], { CONVEYOR_NATS_URL: suite.plane.natsUrl }, bad.write)).toBe(2);
    expect(bad.lines.join('\n')).toMatch(/run id/);
  });

  it('names the NATS URL it could not reach, exit 1', async () => {
    const out = output();
    expect(await runCancelCommand(['r1'], { CONVEYOR_NATS_URL: 'nats://127.0.0.1:1' }, out.write)).toBe(1);
    expect(out.lines.join('\n')).toMatch(/nats:\/\/127\.0\.0\.1:1.*CONVEYOR_NATS_URL/);
  });
});
