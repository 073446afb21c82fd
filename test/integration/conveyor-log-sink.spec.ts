import { Logger } from '@nestjs/common';
import { connect, NatsConnection, JetStreamManager } from 'nats';
import { NatsServer } from '@conveyor-ci/testing';
import { resolveLogConfig } from '../../libs/conveyor/src/module/log.options';
import { LogBudget } from '../../libs/conveyor/src/logger/log-budget';
import { nextLogLine, testRunBinding } from '../../libs/conveyor/src/logger/log-lines.spec-support';
import { ConveyorLogSink } from '../../libs/conveyor/src/logger/sinks/conveyor.sink';

/** The Conveyor sink alone on a real nats-server with the `logs-engine` stream. */
describe('ConveyorLogSink run accounting', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  beforeAll(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: 'logs-engine', subjects: ['logs.>'] });
  });
  afterAll(async () => {
    await nc.close();
    await server.stop();
  });

  it('says a run has unsettled lines from its first line on, before any batch is sealed, until they are stored', async () => {
    const { logs } = resolveLogConfig({}, {}, {}, []);
    const sink = new ConveyorLogSink(nc, logs, new LogBudget(logs.maxTotalBytes), new Logger('test'));
    const binding = testRunBinding({ runId: 'run-accounting' });
    // Fewer lines than a batch holds, in one synchronous stretch: the batch is still open.
    for (let i = 1; i <= 5; i++) sink.write(nextLogLine(binding, `line ${i}`));
    expect(sink.hasUnsettled('run-accounting')).toBe(true);
    expect(sink.hasUnsettled('another-run')).toBe(false);
    await sink.flushRun('run-accounting', 5000);
    expect(sink.hasUnsettled('run-accounting')).toBe(false);
    const info = await jsm.streams.getMessage('logs-engine', { last_by_subj: 'logs.run-accounting' });
    expect(JSON.parse(new TextDecoder().decode(info.data)).message).toBe('line 5');
    expect((await jsm.streams.info('logs-engine')).state.messages).toBe(5);
    await sink.close(1000);
    expect(sink.stats.sent).toBe(5);
  });
});
