import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { DriverLogger, Reconcile, ReconcileContext } from '@conveyor-ci/nestjs';
import { LokiServer, eventually, makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { CapturedLogs } from '../support/captured-logs';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';

const suite = useDriverApps();
const { start, closeAfterTest } = suite;

@Controller()
class LoggingDriver {
  @Reconcile({ resource: 'loki-auth' })
  run(@Ctx() ctx: ReconcileContext) {
    ctx.logger.info('hello Loki');
    return { success: true };
  }
}

/** Runs one event through a driver shipping to `lokiOptions`; returns the driver's logger and its log. */
async function runOnce(lokiOptions: Record<string, unknown>) {
  const name = uniqueDriverName('loki-auth');
  const logs = new CapturedLogs();
  const { app } = await start(name, [LoggingDriver], {
    options: { driverName: name, servers: suite.env.url, loki: { batchIntervalMs: 50, ...lokiOptions } },
    configure: (a) => a.useLogger(logs),
  });
  const sent = await publishDriverMessage(suite.env.js, {
    driver: name,
    resource: makeResource({ name: 'r', resource: 'loki-auth', spec: {} }),
  });
  await suite.env.results.waitForRun(sent.message.run_id);
  return { name, logs, logger: app.get(DriverLogger) };
}

describe('Loki behind authentication', () => {
  it('basic auth (credentials in the URL are taken out of it) and bearer tokens reach Loki', async () => {
    const basic = await LokiServer.start({ auth: { username: 'loki-user', password: 'l0ki-pa55' } });
    closeAfterTest(() => basic.close());
    const viaUrl = await runOnce({ url: basic.url.replace('http://', 'http://loki-user:l0ki-pa55@') });
    await eventually(() => basic.entries({ driver: viaUrl.name }).length === 1, 'the line in Loki', 10_000);
    expect(basic.rejected).toEqual([]);

    const bearer = await LokiServer.start({ auth: { bearerToken: 'b3arer-t0ken' } });
    closeAfterTest(() => bearer.close());
    const withToken = await runOnce({ url: bearer.url, bearerToken: 'b3arer-t0ken', tenant: 'team-a' });
    await eventually(
      () => bearer.entries({ driver: withToken.name }).length === 1,
      'the line in Loki',
      10_000,
    );
  });

  it('wrong credentials: the batch is rejected and counted, and no log line shows the password', async () => {
    const loki = await LokiServer.start({ auth: { username: 'loki-user', password: 'right-one' } });
    closeAfterTest(() => loki.close());
    const run = await runOnce({ url: loki.url, username: 'loki-user', password: 'wr0ng-pa55' });
    await eventually(() => run.logger.stats.sinks.loki?.dropped.rejected === 1, 'the rejected batch', 10_000);
    expect(loki.entries({ driver: run.name })).toEqual([]);
    expect(loki.rejected).toContainEqual({ status: 401, reason: 'unauthorized' });
    expect(run.logs.matching(/Loki rejected 1 line\(s\) with 401/)).toHaveLength(1);
    expect(run.logs.lines.join('\n')).not.toContain('wr0ng-pa55');
  });
});
