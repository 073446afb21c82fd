import { connect } from 'nats';
import { LOGS_ENGINE_STREAM, MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { NatsClusterNode, eventually, sleep } from '@conveyor-ci/testing';
import { account, expectNothingLost } from './support/accounting';
import { shellStep } from './support/event-feeder';
import { startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';
import { streamEvents, RESUME_LIMIT_MS } from './support/fault-sizes';

const EVENTS = streamEvents();
const DRIVER = 'faults-cluster';
/** How long a killed node stays down before it is restarted on the same store. */
const DOWN_MS = 5000;

describe('case 2: 3-node cluster, R3 streams, nodes SIGKILLed under a 10,000-event stream', () => {
  let env: FaultEnv;
  afterAll(() => env?.stop());

  it('kills the messages leader at 1/4 and the driver’s node at 1/2, restarts both: nothing lost, nothing stored twice', async () => {
    env = await FaultEnv.cluster();
    const cluster = env.cluster!;
    const driver = await startDriver('reference', env.servers, DRIVER, { CONVEYOR_CONCURRENCY: '8' });
    await env.waitForConsumer(DRIVER);
    const kills: { node: string; role: string; down: number; led: string[]; ledAgain: number }[] = [];
    // Which Raft groups the victim led: a consumer leader's loss means an election before pulls work.
    const groupsLedBy = async (node: NatsClusterNode) => {
      const leaders = {
        messages: (await env.jsm.streams.info(MESSAGES_STREAM)).cluster?.leader,
        'pipeline-engine': (await env.jsm.streams.info('pipeline-engine')).cluster?.leader,
        'logs-engine': (await env.jsm.streams.info(LOGS_ENGINE_STREAM)).cluster?.leader,
        consumer: (await env.jsm.consumers.info(MESSAGES_STREAM, DRIVER)).cluster?.leader,
      };
      return Object.entries(leaders)
        .filter(([, leader]) => leader === node.name)
        .map(([group]) => group);
    };
    // When the consumer and the three streams the driver uses have a leader on a running node again: no
    // client can get work before that (a Raft election after SIGKILL takes seconds, server side).
    // Asked through a fresh connection to a surviving node: the suite's own may be reconnecting.
    const whenLedAgain = async () => {
      const nc = await connect({ servers: cluster.runningNodes.map((n) => n.server.url) });
      const jsm = await nc.jetstreamManager({ timeout: 1000, checkAPI: false });
      try {
        for (;;) {
          const running = new Set(cluster.runningNodes.map((n) => n.name));
          const leaders = await Promise.all([
            jsm.streams.info(MESSAGES_STREAM).then((i) => i.cluster?.leader),
            jsm.streams.info('pipeline-engine').then((i) => i.cluster?.leader),
            jsm.streams.info(LOGS_ENGINE_STREAM).then((i) => i.cluster?.leader),
            jsm.consumers.info(MESSAGES_STREAM, DRIVER).then((i) => i.cluster?.leader),
          ]).catch(() => [undefined]);
          if (leaders.every((l) => l && running.has(l))) return Date.now();
          await sleep(100);
        }
      } finally {
        await nc.close();
      }
    };
    const killAndRestart = async (role: string, pick: () => Promise<NatsClusterNode | undefined>) => {
      // The previous victim must be back and caught up, or this kill would take the quorum.
      await cluster.waitForStreamLeader(env.jsm, MESSAGES_STREAM, 60_000);
      const node = await pick();
      if (!node) throw new Error(`no node to kill as ${role}`);
      const kill = { node: node.name, role, down: Date.now(), led: await groupsLedBy(node), ledAgain: 0 };
      kills.push(kill);
      await node.server.halt('SIGKILL');
      kill.ledAgain = await whenLedAgain();
      await sleep(DOWN_MS);
      await cluster.restart(node, 60_000);
    };
    const connectionName = `Conveyor Driver Manager - ${DRIVER}`;
    const faults: Promise<void>[] = [];
    const startedAt = Date.now();
    await env.feeder.feed(EVENTS, () => shellStep(DRIVER, 'true'), {
      perSecond: 400,
      onPublished: (n) => {
        if (n === Math.floor(EVENTS / 4))
          faults.push(
            killAndRestart('messages leader', () => cluster.streamLeader(env.jsm, MESSAGES_STREAM)),
          );
        if (n === Math.floor(EVENTS / 2))
          faults.push(
            faults[0].then(() =>
              killAndRestart('driver’s node', () => cluster.nodeOfConnection(connectionName)),
            ),
          );
      },
    });
    await Promise.all(faults);
    await cluster.waitForStreamLeader(env.jsm, MESSAGES_STREAM, 60_000);
    const outcome = await account(env, DRIVER, '2 cluster: leader + driver’s node SIGKILLed', startedAt, {
      timeoutMs: 240_000,
    });
    // From the moment the driver could work again (its connection back, if it dropped, and every
    // group it uses led again) to its next new result.
    const resumes = kills.map((kill) => {
      const back = Math.max(kill.ledAgain, driver.loggedAt('reconnected to NATS', kill.down) ?? 0);
      const next = env.wire.firstAfter(back);
      return next === undefined ? Infinity : next - back;
    });
    // The target is for a connection that came back (the driver's node, killed second). With the
    // first kill the driver stays connected; its wait after the re-election is reported, not held
    // to 2 s (0 to 7 s seen: nothing is delivered on the open, heartbeated pulls meanwhile).
    outcome.row.resumeMs = resumes[1];
    outcome.row.notes =
      `${EVENTS} reference-driver runs (concurrency 8, all three URLs), published at up to 400/s (ahead of the driver: a backlog at each kill) with retries ` +
      `(${env.feeder.retries} publish retries); killed ${kills.map((k) => `${k.role} ${k.node} (leading ${k.led.join(', ') || 'nothing'}; led again after ${((k.ledAgain - k.down) / 1000).toFixed(1)} s)`).join(', then ')}, ` +
      `each down ${DOWN_MS / 1000} s; resume = the driver's reconnect (or the re-election, if later) to its next result; ` +
      `after the first kill (driver still connected) the next result came ${(resumes[0] / 1000).toFixed(1)} s after the re-election`;
    expectNothingLost(outcome);
    expect(outcome.row.resumeMs).toBeLessThanOrEqual(RESUME_LIMIT_MS);
    await eventually(
      async () => (await cluster.nodeOfConnection(connectionName)) !== undefined,
      'driver connected',
    );
    expect(await driver.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
