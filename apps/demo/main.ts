/**
 * `npm run demo`: the main job until the local control plane exists. Starts a real nats-server,
 * creates Conveyor's streams as the server does, starts the built reference driver, publishes one
 * `pipeline` step event exactly as the server would, prints the step output and the result, and
 * shuts everything down. Exit code 0 when the run succeeded.
 */
import { resolve } from 'node:path';
import { connect } from 'nats';
import {
  DriverProcess,
  NatsServer,
  ResultCollector,
  createConveyorStreams,
  freePort,
  makeResource,
  publishDriverMessage,
  waitForConsumer,
} from '@conveyor-ci/testing';

const DRIVER = 'shell-runner';
const ENTRY = resolve(__dirname, '../../src/main.js');

async function main(): Promise<number> {
  const nats = await NatsServer.start();
  console.log(`nats-server ${nats.url} (JetStream store ${nats.storeDir})`);
  const nc = await connect({ servers: nats.url });
  let driver: DriverProcess | undefined;
  try {
    const jsm = await nc.jetstreamManager();
    await createConveyorStreams(jsm);
    driver = new DriverProcess(
      ENTRY,
      {
        CONVEYOR_NATS_URL: nats.url,
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
    await waitForConsumer(jsm, DRIVER);
    const results = new ResultCollector(nc);
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
    const sent = await publishDriverMessage(nc.jetstream(), { resource, driver: DRIVER });
    console.log(`published ${sent.subject} run ${sent.message.run_id}`);
    const [result] = await results.waitFor(1, 60_000);
    results.close();
    console.log('\nresult on pipelines.driver.result:');
    console.log(JSON.stringify(result, null, 2));
    return result.driverresult.success ? 0 : 1;
  } finally {
    const exit = await driver?.stop('SIGTERM');
    if (exit) console.log(`driver stopped (${exit.signal ?? `exit ${exit.code}`})`);
    await nc.close();
    await nats.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
