/**
 * `npm run demo`: the main job until the local control plane exists. Starts a real nats-server,
 * creates Conveyor's streams as the server does, starts the built reference driver, publishes one
 * `pipeline` step event exactly as the server would, prints the step output and the result, and
 * shuts everything down. Exit code 0 when the run succeeded.
 */
import { resolve } from 'node:path';
import {
  ConveyorTestEnv,
  DriverProcess,
  freePort,
  makeResource,
  publishDriverMessage,
  waitForConsumer,
} from '@conveyor-ci/testing';

const DRIVER = 'shell-runner';
const ENTRY = resolve(__dirname, '../../src/main.js');

async function main(): Promise<number> {
  const env = await ConveyorTestEnv.start();
  console.log(`nats-server ${env.url} (JetStream store ${env.server.storeDir})`);
  let driver: DriverProcess | undefined;
  try {
    driver = new DriverProcess(
      ENTRY,
      {
        CONVEYOR_NATS_URL: env.url,
        CONVEYOR_DRIVER_NAME: DRIVER,
        PORT: String(await freePort()),
        HOST: '127.0.0.1',
      },
      {
        onLine: ({ json, raw }) => {
          if (!json) return void console.log(`  [driver] ${raw}`);
          const where = json.step
            ? `${json.step}${json.stream === 'stderr' ? '!' : ''}`
            : String(json.context ?? '');
          console.log(`  [driver ${where}] ${json.msg}`);
        },
      },
    );
    // Interest retention: an event published before the consumer exists is dropped, as on a real server.
    await waitForConsumer(env.jsm, DRIVER);
    const resource = makeResource({
      name: 'hello-conveyor',
      resource: 'pipeline',
      pipeline: 'demo',
      spec: {
        env: { GREETING: 'Hello from Conveyor' },
        steps: [
          { name: 'greet', run: 'echo "$GREETING"; uname -sr' },
          { name: 'count', run: 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done' },
        ],
      },
    });
    const sent = await publishDriverMessage(env.js, { resource, driver: DRIVER });
    console.log(`published ${sent.subject} run ${sent.message.run_id}`);
    const result = await env.results.waitForRun(sent.message.run_id, 60_000);
    console.log('\nresult on pipelines.driver.result:');
    console.log(JSON.stringify(result, null, 2));
    return result.driverresult.success ? 0 : 1;
  } finally {
    const exit = await driver?.stop('SIGTERM');
    if (exit) console.log(`driver stopped (${exit.signal ?? `exit ${exit.code}`})`);
    await env.stop();
  }
}

// Ctrl-C: exit through process.exit so the harness kills nats-server and the driver (killOnExit).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
