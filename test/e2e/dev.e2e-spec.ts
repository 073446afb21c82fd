import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { resolve } from 'node:path';
import { DriverProcess, isProcessAlive, waitForExit } from '@conveyor-ci/testing';
import { runDev } from '../support/dev-run';

const DEV = resolve(__dirname, '../../dist/apps/dev/main.js');

/** True when something accepts connections on `url`'s port. */
function listening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((done) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    socket.once('connect', () => (socket.destroy(), done(true)));
    socket.once('error', () => done(false));
  });
}

/** The nats-server URL and the pids of both drivers the dev script printed. */
function started(out: string): { natsUrl: string; driverPids: number[] } {
  const nats = /NATS (nats:\/\/\S+)/.exec(out)![1];
  const driverPids = [...out.matchAll(/started \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  return { natsUrl: nats, driverPids };
}

describe('npm run dev (built, as a child process)', () => {
  beforeAll(() => {
    if (!existsSync(DEV)) throw new Error(`${DEV} is missing: run \`npm run build\` first (npm test does)`);
  });

  it('--once: runs the sample pipeline through the API, streams its logs, prints the result, leaves nothing running', async () => {
    const { code, out } = await runDev(DEV, ['--once']);
    expect({ code, out }).toMatchObject({ code: 0 });
    expect(out).toMatch(/submitted hello-\d+: run [0-9a-f-]{36}; its log:/);
    expect(out).toContain('[shell-runner] Hello from Conveyor (token: ***)');
    expect(out).not.toContain('s3cr3t-token');
    expect(out).toContain('[shell-runner] tick 3');
    expect(out).toContain('result: success: 2 step(s) passed');
    // The second step: report-writer read the shell runner's result and created a report through the API.
    expect(out).toMatch(/report-writer: success: report hello-\d+-report created/);
    expect(out).toMatch(/report resource report\/hello-\d+-report \(version 1\):/);
    expect(out).toContain('"summary": "shell-runner: succeeded: 2 step(s) passed"');
    // Both drivers' probes and metrics are announced.
    expect(out).toMatch(
      /reference driver "shell-runner" started \(pid \d+\): http:\/\/127\.0\.0\.1:\d+\/health, http:\/\/127\.0\.0\.1:\d+\/metrics/,
    );
    expect(out).toMatch(
      /example driver "report-writer" started \(pid \d+\): http:\/\/127\.0\.0\.1:\d+\/health, /,
    );
    const { natsUrl, driverPids } = started(out);
    expect(driverPids).toHaveLength(2);
    for (const pid of driverPids) expect(await waitForExit(pid)).toBe(true);
    expect(await listening(natsUrl)).toBe(false);
  });

  it('--once --cancel: prints progress, cancels the run after its first step, the step is stopped', async () => {
    const { code, out } = await runDev(DEV, ['--once', '--cancel']);
    expect({ code, out }).toMatchObject({ code: 0 });
    // The cancel form needs no nats CLI: the library's run control behind `npm run cancel`.
    expect(out).toMatch(
      /cancel it from another shell: CONVEYOR_NATS_URL=nats:\/\/\S+ npm run cancel -- [0-9a-f-]{36} stop /,
    );
    expect(out).toMatch(/its stored lines: GET http:\/\/127\.0\.0\.1:\d+\/logs\?runid=[0-9a-f-]{36}/);
    expect(out).toContain('applied the resource definition "pipeline"');
    expect(out).toContain('progress [shell-runner] 1/2 (50 %)');
    expect(out).toContain('result: failure: cancelled: cancelled from npm run dev -- --cancel');
    // The run's own log ends with why (once, not "cancelled: cancelled: ...").
    expect(out).toContain('[shell-runner] cancelled: cancelled from npm run dev -- --cancel');
    expect(out).not.toContain('[shell-runner] tick 3');
    const { driverPids } = started(out);
    for (const pid of driverPids) expect(await waitForExit(pid)).toBe(true);
  });

  it('keeps running until SIGTERM (Ctrl-C), then stops the driver and the stack', async () => {
    const dev = new DriverProcess(DEV, {});
    await dev.waitForLine((l) => l.raw.startsWith('Still running.'), 60_000);
    // The announced probe answers while it runs.
    const health = /reference driver "shell-runner" started \(pid \d+\): (\S+),/.exec(
      dev.lines.map((l) => l.raw).join('\n'),
    )![1];
    expect((await fetch(health)).status).toBe(200);
    const { natsUrl, driverPids } = started(dev.lines.map((l) => l.raw).join('\n'));
    expect(driverPids).toHaveLength(2);
    for (const pid of driverPids) expect(isProcessAlive(pid)).toBe(true);
    expect(await dev.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    for (const pid of driverPids) expect(await waitForExit(pid)).toBe(true);
    expect(await listening(natsUrl)).toBe(false);
  });
});
