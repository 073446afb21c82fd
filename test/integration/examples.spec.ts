import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { ConveyorClient, previousResult } from '@conveyor-ci/nestjs';
import { ConveyorControlPlane, DriverProcess, eventually, waitForConsumer } from '@conveyor-ci/testing';

/**
 * `examples/` is built with tsc and each example run as a process against the local control plane,
 * as a reader would run it: so the README's driver (examples/minimal-driver/main.ts) stays true.
 */
const repo = join(__dirname, '../..');
const out = join(repo, 'node_modules/.cache/conveyor-examples');

let plane: ConveyorControlPlane;
let nc: NatsConnection;

beforeAll(async () => {
  const tsc = spawnSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', join(repo, 'examples/tsconfig.json')],
    { encoding: 'utf8' },
  );
  expect(tsc.stdout + tsc.stderr).toBe('');
  plane = await ConveyorControlPlane.start();
  nc = await connect({ servers: plane.natsUrl });
}, 180_000);

afterAll(async () => {
  await nc?.close();
  await plane?.stop();
});

it('the minimal driver reconciles a pipeline step, logs a short run line, and exits 0 on SIGTERM', async () => {
  const client = new ConveyorClient({ apiUrl: plane.apiUrl });
  await client.createResourceDefinition({ name: 'greeting', schema: { type: 'object' } });
  await client.createPipeline({
    name: 'greet',
    resource: 'greeting',
    steps: [{ name: 'greet', driver: 'greeter' }],
  });

  const driver = new DriverProcess(join(out, 'examples/minimal-driver/main.js'), {
    CONVEYOR_NATS_URL: plane.natsUrl,
    CONVEYOR_API_URL: plane.apiUrl,
    PORT: '0',
    // The import of @conveyor-ci/nestjs resolves to the library built next to the example.
    TS_NODE_BASEURL: out,
    NODE_OPTIONS: `--require=${require.resolve('tsconfig-paths/register')}`,
  });
  try {
    await waitForConsumer(await nc.jetstreamManager(), 'greeter', { timeoutMs: 30_000 });
    const { runid } = await client.createResource({
      name: 'w1',
      resource: 'greeting',
      pipeline: 'greet',
      spec: { to: 'world' },
    });
    let result: ReturnType<typeof previousResult>;
    await eventually(
      async () => {
        const stored = await client.getResource('greeting', 'w1');
        result = stored ? previousResult(stored, 'greeter') : undefined;
        return result !== undefined;
      },
      "the greeter's result on the resource",
      30_000,
    );
    expect(result!).toMatchObject({ success: true, message: 'greeted world', driver: 'greeter' });
    // The settlement line: short run id, resource, event, duration, the verb in words.
    const plain = (raw: string) => raw.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '');
    const line = await driver.waitForLine((l) =>
      plain(l.raw).includes(`run ${runid.slice(0, 8)} greeting/w1`),
    );
    expect(plain(line.raw)).toMatch(/succeeded run \w{8} greeting\/w1 \w+ in \d+(\.\d)? m?s; acked$/);
  } finally {
    expect(await driver.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  }
}, 120_000);
