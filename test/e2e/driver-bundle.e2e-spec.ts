/**
 * The production build of issue 28: the reference driver bundled by `conveyor-nestjs bundle`, run
 * from its code cache against a real nats-server, does the reference driver's work.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConveyorTestEnv,
  DriverProcess,
  freePort,
  makeResource,
  publishDriverMessage,
  waitForConsumer,
} from '@conveyor-ci/testing';
import { bundleCommand } from '@conveyor-ci/nestjs/cli/bundle.command';
import { REFERENCE_DRIVER_ENTRY, whenConsuming } from '../support/reference-driver';
import { storedRunLogs } from '../support/stored-logs';

const DRIVER = 'bundled-shell-runner';

let env: ConveyorTestEnv;
let dir: string;
const said: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'driver-bundle-'));
  env = await ConveyorTestEnv.start();
  const io = { out: (l: string) => said.push(l), err: (l: string) => said.push(l) };
  // The build is given this server as the driver's NATS: priming must not reach it.
  const code = await bundleCommand([REFERENCE_DRIVER_ENTRY, '--out', dir, '--prime-ms', '1500'], io, {
    PATH: process.env.PATH,
    CONVEYOR_NATS_URL: env.url,
    CONVEYOR_DRIVER_NAME: DRIVER,
  });
  if (code !== 0) throw new Error(`bundle failed:\n${said.join('\n')}`);
}, 120_000);

afterAll(async () => {
  await env?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function startBundled(name: string, extra: Record<string, string> = {}): Promise<DriverProcess> {
  return new DriverProcess(join(dir, 'main.js'), {
    ...extra,
    CONVEYOR_NATS_URL: env.url,
    CONVEYOR_DRIVER_NAME: name,
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
  });
}

describe('conveyor-nestjs bundle: the reference driver', () => {
  it('writes the bundle, its start-up and a primed cache; priming never reached the server', async () => {
    for (const file of ['app.js', 'app.js.map', 'main.js', 'app.js.cache', 'package.json']) {
      expect(existsSync(join(dir, file))).toBe(true);
    }
    expect(said.join('\n')).toMatch(
      /app\.js \d+\.\d MiB, main\.js, app\.js\.cache \d+\.\d MiB \(primed for 1500 ms\)/,
    );
    // Nest and the library are inside app.js, not required from node_modules at start.
    const app = readFileSync(join(dir, 'app.js'), 'utf8');
    expect(app).toContain('NestFactoryStatic');
    expect(app).toContain('ConveyorTransport');
    const consumers = await env.jsm.consumers.list('messages').next();
    expect(consumers.map((c) => c.name)).not.toContain(DRIVER);
  });

  it('runs a pipeline from the cache: result, stored logs and process log as unbundled', async () => {
    const driver = await startBundled(DRIVER, { CONVEYOR_LOG_STREAMS_TO_PROCESS_LOG: 'true' });
    try {
      await whenConsuming(driver);
      await waitForConsumer(env.jsm, DRIVER);
      const sent = await publishDriverMessage(env.js, {
        driver: DRIVER,
        resource: makeResource({
          name: 'bundled',
          resource: 'pipeline',
          pipeline: 'e2e',
          spec: { steps: [{ name: 'greet', run: 'echo "hello from the bundle"' }] },
        }),
      });
      const result = await env.results.waitForRun(sent.message.run_id, 30_000).catch((err: Error) => {
        throw new Error(`${err.message}; driver said:\n${driver.tail()}`);
      });
      expect(result.driverresult).toMatchObject({
        success: true,
        message: '1 step(s) passed',
        driver: DRIVER,
      });
      const logs = await storedRunLogs(env.jsm, sent.message.run_id);
      expect(logs.map((l) => l.log.message)).toContain('hello from the bundle');
      // The process log goes through the app's nestjs-pino, fields as JSON keys (found in the bundle,
      // where no require.cache entry exists for it).
      const line = await driver.waitForLine((l) => l.json?.msg === 'hello from the bundle', 5_000);
      expect(line.json).toMatchObject({ run_id: sent.message.run_id, step: 'greet', stream: 'stdout' });
      // V8 took the cache: a refused one is announced with this code.
      expect(driver.lines.map((l) => l.raw).join('\n')).not.toContain('CONVEYOR_CODE_CACHE_REJECTED');
    } finally {
      await driver.stop('SIGTERM');
    }
  }, 60_000);

  it('starts without its cache when V8 refuses it, and says so', async () => {
    writeFileSync(join(dir, 'app.js.cache'), Buffer.alloc(64 * 1024, 1));
    const driver = await startBundled(`${DRIVER}-refused`);
    try {
      await whenConsuming(driver);
      await driver.waitForLine((l) => l.raw.includes('[CONVEYOR_CODE_CACHE_REJECTED]'), 5_000);
    } finally {
      await driver.stop('SIGTERM');
    }
  }, 60_000);
});
