import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { connect } from 'nats';
import { DriverProcess, eventually, freePort, registerSpawned, waitForConsumer } from '@conveyor-ci/testing';
import { runDev } from '../support/dev-run';

const CONVEYOR_DEV = resolve(__dirname, '../../dist/apps/conveyor-dev/main.js');

describe('npm run conveyor:dev (built, as a child process)', () => {
  it.each([
    ['CONVEYOR_DEV_API_PORT', 'API'],
    ['CONVEYOR_DEV_NATS_PORT', 'nats-server'],
  ])('names %s when its port is taken, in one line, and exits 1', async (setting, service) => {
    const busy = createServer();
    await new Promise<void>((done) => busy.listen(0, '127.0.0.1', done));
    const port = (busy.address() as { port: number }).port;
    try {
      const other = setting === 'CONVEYOR_DEV_API_PORT' ? 'CONVEYOR_DEV_NATS_PORT' : 'CONVEYOR_DEV_API_PORT';
      const { code, out } = await runDev(CONVEYOR_DEV, [], { [setting]: String(port), [other]: '0' });
      expect(code).toBe(1);
      expect(out.trim()).toBe(
        `port ${port} is already in use: the local ${service} cannot listen there: set ${setting} to a free port (e.g. ${setting}=0 for any)`,
      );
    } finally {
      busy.close();
    }
  });
});

describe('npm run conveyor:dev, then only what it prints (issue 26)', () => {
  const ENTRY = resolve(__dirname, '../../dist/src/main.js');
  let plane: DriverProcess | undefined;
  let driver: DriverProcess | undefined;
  afterEach(async () => {
    await driver?.stop('SIGTERM');
    await plane?.stop('SIGINT');
  });

  /** Runs one printed command line with the shell, as a user pasting it would; its stdout. */
  function shell(line: string): string {
    return execFileSync('/bin/sh', ['-c', line], { encoding: 'utf8', timeout: 15_000 });
  }

  it('seeds the pipeline definition; its curls give a driver event and readable logs', async () => {
    if (!existsSync(CONVEYOR_DEV) || !existsSync(ENTRY))
      throw new Error('dist is missing: run `npm run build` first (npm test does)');
    plane = new DriverProcess(CONVEYOR_DEV, { CONVEYOR_DEV_API_PORT: '0', CONVEYOR_DEV_NATS_PORT: '0' });
    await plane.waitForLine(({ raw }) => raw === 'Ctrl-C stops.', 30_000);
    const out = plane.lines.map((l) => l.raw);
    expect(out).toContainEqual(expect.stringMatching(/^Seeded the resource definition "pipeline"/));
    const printed = (pattern: RegExp) => {
      const line = out.find((l) => pattern.test(l.trim()));
      if (!line) throw new Error(`no line matching ${pattern} in:\n${out.join('\n')}`);
      return line.trim();
    };

    // Step 1: the driver, with exactly the env the banner printed (and a free probe port).
    const startLine = printed(/ npm start$/);
    const env = Object.fromEntries(
      startLine
        .replace(/ npm start$/, '')
        .split(' ')
        .map((pair) => pair.split('=', 2) as [string, string]),
    );
    driver = new DriverProcess(ENTRY, { ...env, PORT: String(await freePort()), HOST: '127.0.0.1' });
    // Interest retention: a step published before the driver's consumer exists would be dropped.
    const nc = await connect({ servers: env.CONVEYOR_NATS_URL });
    try {
      await waitForConsumer(await nc.jetstreamManager(), 'shell-runner', { timeoutMs: 30_000 });
    } finally {
      await nc.close();
    }

    // Steps 3 and 4, pasted as printed (the definition is seeded).
    const pipeline = JSON.parse(shell(printed(/^curl .*\/pipelines'/)));
    expect(pipeline).toMatchObject({ name: 'hello-pipeline', resource: 'pipeline' });
    const created = JSON.parse(shell(printed(/^curl .*\/resources'/)));
    expect(created).toMatchObject({ message: 'Resource created successfully', runid: expect.any(String) });

    // The run's logs line, printed when it started.
    const logsLine = await plane.waitForLine(({ raw }) => raw.includes(`/logs?runid=${created.runid}`));
    const logsCurl = logsLine.raw.replace(/^\s*logs:\s*/, '');
    expect(logsCurl).toMatch(/^curl -sS 'http:\/\/127\.0\.0\.1:\d+\/logs\?runid=/);
    expect(plane.lines.map((l) => l.raw)).toContainEqual(
      expect.stringMatching(
        new RegExp(`cancel: CONVEYOR_NATS_URL=\\S+ npm run cancel -- ${created.runid} stop$`),
      ),
    );
    // The driver event: the engine saw the shell runner's result.
    await plane.waitForLine(
      ({ raw }) => raw.includes(`run ${created.runid}: shell-runner succeeded`),
      60_000,
    );
    let logs: { driver: string; message: string }[] = [];
    await eventually(() => {
      logs = JSON.parse(shell(logsCurl));
      return logs.some((log) => log.message.includes('hello from Conveyor'));
    }, 'the step output in GET /logs');
    expect(logs.every((log) => log.driver === 'shell-runner')).toBe(true);
  });

  it('--no-seed starts empty and says so: the first submit of a pipeline resource fails as on a fresh server', async () => {
    const child = spawn(process.execPath, [CONVEYOR_DEV, '--no-seed'], {
      env: { ...process.env, CONVEYOR_DEV_API_PORT: '0', CONVEYOR_DEV_NATS_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    registerSpawned({ pid: child.pid });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise((done) => child.once('exit', done));
    try {
      await eventually(() => out.includes('Ctrl-C stops.'), 'the banner', 30_000);
      expect(out).toContain('Not seeded (--no-seed)');
      const submit = /^\s*(curl .*\/resources'.*)$/m.exec(out)![1];
      expect(JSON.parse(execFileSync('/bin/sh', ['-c', submit], { encoding: 'utf8' }))).toEqual({
        error: 'Failed to find resource definition: resource definition with name pipeline not found',
      });
    } finally {
      child.kill('SIGINT');
      await exited;
    }
  });
});
