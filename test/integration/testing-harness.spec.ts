import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, RetentionPolicy, StorageType } from 'nats';
import { DRIVER_MESSAGE_BYTES } from '../../libs/conveyor/src/protocol/fixtures';
import {
  ConveyorControlPlane,
  ConveyorTestEnv,
  NatsServer,
  PortInUseError,
  publishDriverMessage,
  waitForConsumer,
} from '@conveyor-ci/testing';

describe('NatsServer harness and Conveyor helpers', () => {
  let env: ConveyorTestEnv;
  beforeAll(async () => (env = await ConveyorTestEnv.start()));
  afterAll(() => env.stop());

  it('creates the three streams as the Conveyor server does (§5.1)', async () => {
    const configs = Object.fromEntries(
      await Promise.all(
        ['messages', 'pipeline-engine', 'logs-engine'].map(async (n) => [
          n,
          (await env.jsm.streams.info(n)).config,
        ]),
      ),
    );
    expect(configs.messages).toMatchObject({
      subjects: ['resources.>', 'events.>', 'drivers.>'],
      retention: RetentionPolicy.Interest,
      storage: StorageType.File,
    });
    expect(configs['pipeline-engine']).toMatchObject({
      subjects: ['pipelines.>'],
      retention: RetentionPolicy.Workqueue,
    });
    expect(configs['logs-engine']).toMatchObject({
      subjects: ['logs.>'],
      retention: RetentionPolicy.Workqueue,
    });
  });

  it('publishes a DriverMessage byte for byte as the server does (contract §3.4 golden)', async () => {
    await env.jsm.consumers.add('messages', {
      durable_name: 'golden',
      filter_subjects: ['resources.flutter-builder'],
      ack_policy: AckPolicy.Explicit,
    });
    const golden = JSON.parse(DRIVER_MESSAGE_BYTES);
    const sent = await publishDriverMessage(env.js, {
      resource: JSON.parse(golden.payload),
      id: golden.id,
      runId: golden.run_id,
    });
    expect(sent.subject).toBe('resources.flutter-builder');
    const stored = await env.jsm.streams.getMessage('messages', { seq: sent.seq });
    expect(new TextDecoder().decode(stored.data)).toBe(DRIVER_MESSAGE_BYTES);
    expect([...(stored.header?.keys() ?? [])]).toEqual([]); // the server sends no headers
  });

  it('drops an event nobody is interested in, like the real server (interest retention)', async () => {
    const sent = await publishDriverMessage(env.js, {
      resource: { name: 'n', resource: 'nobody-listens', spec: {} },
    });
    await expect(env.jsm.streams.getMessage('messages', { seq: sent.seq })).rejects.toThrow(
      /no message found/,
    );
  });

  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'restarts on the same port and store after %s, keeping streams and durable consumers',
    async (signal) => {
      await env.jsm.consumers.add('messages', {
        durable_name: `keep-${signal}`,
        filter_subjects: ['resources.kept'],
        ack_policy: AckPolicy.Explicit,
      });
      const port = env.server.port;
      await env.server.restart(signal);
      expect(env.server.port).toBe(port);
      await waitForConsumer(env.jsm, `keep-${signal}`, { filterSubjects: ['resources.kept'] });
      expect((await env.jsm.streams.info('messages')).config.retention).toBe(RetentionPolicy.Interest);
    },
  );

  it('refuses a nats-server older than 2.10.27, saying how to get a newer one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'old-nats-'));
    const fake = join(dir, 'nats-server');
    writeFileSync(fake, '#!/bin/sh\necho "nats-server: v2.9.10"\n');
    chmodSync(fake, 0o755);
    await expect(NatsServer.start({ binary: fake })).rejects.toThrow(
      /nats-server 2\.9\.10: too old, need >= 2\.10\.27.*npm run nats:install/,
    );
  });
});

describe('port conflicts', () => {
  let busy: Server;
  let port: number;
  // A private temp folder: other suites running in parallel create stores of their own.
  const temp = mkdtempSync(join(tmpdir(), 'port-conflicts-'));
  const stores = () => readdirSync(temp);
  const realTmp = process.env.TMPDIR;

  beforeEach(() => void (process.env.TMPDIR = temp));
  afterEach(() => {
    if (realTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = realTmp;
  });

  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    port = (busy.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => busy.close(() => resolve())));

  it('nats-server on a taken port: a PortInUseError naming the port, and no store left behind', async () => {
    const error = await NatsServer.start({ port }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PortInUseError);
    expect(error).toMatchObject({ port, service: 'nats' });
    expect((error as Error).message).toBe(
      `port ${port} is already in use: the local nats-server cannot listen there`,
    );
    expect(stores()).toEqual([]);
  });

  it("the control plane's API on a taken port: a PortInUseError, and its nats-server and store are gone", async () => {
    const error = await ConveyorControlPlane.start({ apiPort: port }).catch((e: unknown) => e);
    expect(error).toMatchObject({ port, service: 'api' });
    expect(stores()).toEqual([]);
  });
});
