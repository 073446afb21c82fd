/**
 * `npm run dev`: the whole loop on one machine, no Docker. Starts the local Conveyor control plane
 * (nats-server + API + engines), the built reference driver, applies a sample resource definition and
 * pipeline, submits a `pipeline` resource through the API, streams the run's logs from the API's SSE
 * endpoint, prints the result, and keeps running until Ctrl-C (`--once`: exits after the run, 0 when
 * it succeeded; `--cancel`: cancels the run once its first step is done, 0 when it ended cancelled).
 * Nothing is left running afterwards.
 */
import { resolve } from 'node:path';
import type { PipelineEvent } from '@conveyor-ci/nestjs';
import {
  ConveyorControlPlane,
  DriverProcess,
  PIPELINE_DEFINITION,
  createLocalAuth,
  freePort,
  readEventStream,
  waitForConsumer,
} from '@conveyor-ci/testing';
import { logsUrl } from '../conveyor-dev/banner';
import { DEAD_LETTER_SUBJECTS, deadLetterSubject } from '../conveyor-dev/console-setup';
import { warnAboutMissingDrivers } from '../conveyor-dev/driver-check';
import { REPORT_WRITER, printReport, startReportWriter } from './report-step';
import { cancelHint, cancelRequested, printProgress } from './run-control-step';

const DRIVER = 'shell-runner';
const ENTRY = resolve(__dirname, '../../src/main.js');
const once = process.argv.includes('--once');
// --auth: the control plane as with `api.auth_enabled: true` (NATS mTLS + PoP JWTs), certificates made here.
const auth = process.argv.includes('--auth') ? createLocalAuth() : undefined;

async function api(base: string, method: string, path: string, body: unknown): Promise<any> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(await auth?.headers()) },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} -> ${response.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Prints the run's log lines as the API streams them (SSE, replay then live), until `signal` aborts. */
async function streamLogs(base: string, runId: string, signal: AbortSignal): Promise<void> {
  return readEventStream(
    `${base}/logs/pipeline/${runId}`,
    (data) => {
      const log = JSON.parse(data) as { driver: string; message: string };
      console.log(`  [${log.driver}] ${log.message}`);
    },
    signal,
    await auth?.headers(),
  );
}

/** The result of `driver`'s step of the run (the last step's ends the run). */
function waitForResult(plane: ConveyorControlPlane, runId: string, driver: string): Promise<PipelineEvent> {
  return new Promise((resolvePromise) => {
    const sub = plane.nc.subscribe('pipelines.driver.result', {
      callback: (_err, msg) => {
        const event = JSON.parse(new TextDecoder().decode(msg.data)) as PipelineEvent;
        if (event.run_id !== runId || event.driverresult.driver !== driver) return;
        sub.unsubscribe();
        resolvePromise(event);
      },
    });
  });
}

/** The client certificate's env (`--auth`), for commands that connect to NATS. */
function tlsEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(auth?.driverEnv ?? {}).filter(([key]) => key.startsWith('CONVEYOR_TLS_')),
  );
}

/** Where a driver's probes and metrics answer. */
function probes(port: number): string {
  return `http://127.0.0.1:${port}/health, http://127.0.0.1:${port}/metrics`;
}

async function main(): Promise<number> {
  // Set once started: a run submitted before (none can be) is not checked.
  const started: { plane?: ConveyorControlPlane } = {};
  const plane = await ConveyorControlPlane.start({
    onEvent: (line) => console.log(`[engine] ${line}`),
    auth: auth?.pki,
    console: { deadLetterSubject: DEAD_LETTER_SUBJECTS },
    onRun: (_runId, resource) => started.plane && warnAboutMissingDrivers(started.plane, resource),
  });
  started.plane = plane;
  console.log(
    `Conveyor API ${plane.apiUrl}, NATS ${plane.natsUrl}${auth ? ` (secured: certificates in ${auth.pki.dir})` : ''}`,
  );
  console.log(`Console ${plane.consoleUrl} (drivers, runs, logs, cancel, dead letters)`);
  const [driverPort, writerPort] = [await freePort(), await freePort()];
  const driver = new DriverProcess(
    ENTRY,
    {
      CONVEYOR_NATS_URL: plane.natsUrl,
      CONVEYOR_API_URL: plane.apiUrl,
      CONVEYOR_DRIVER_NAME: DRIVER,
      PORT: String(driverPort),
      HOST: '127.0.0.1',
      CONVEYOR_DEAD_LETTER_SUBJECT: deadLetterSubject(DRIVER),
      ...auth?.driverEnv,
    },
    // The driver's own log is JSON for machines; show only its warnings and errors here.
    {
      onLine: ({ json, raw }) =>
        (!json || Number(json.level) >= 40) && console.log(`  [driver] ${json?.msg ?? raw}`),
    },
  );
  console.log(`reference driver "${DRIVER}" started (pid ${driver.pid}): ${probes(driverPort)}`);
  const reportWriter = await startReportWriter(plane, DRIVER, writerPort, {
    CONVEYOR_DEAD_LETTER_SUBJECT: deadLetterSubject(REPORT_WRITER),
    ...auth?.driverEnv,
  });
  console.log(`example driver "${REPORT_WRITER}" started (pid ${reportWriter.pid}): ${probes(writerPort)}`);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.all([driver.stop('SIGTERM'), reportWriter.stop('SIGTERM')]);
      await plane.stop();
      auth?.remove();
    })());
  process.on('SIGINT', () => void stop().then(() => process.exit(0)));
  process.on('SIGTERM', () => void stop().then(() => process.exit(0)));
  try {
    // Interest retention: an event published before the driver's consumer exists is dropped.
    await waitForConsumer(plane.jsm, DRIVER, { timeoutMs: 30_000 });
    await waitForConsumer(plane.jsm, REPORT_WRITER, { timeoutMs: 30_000 });
    console.log(`drivers "${DRIVER}" and "${REPORT_WRITER}" are consuming`);
    // A Conveyor server refuses resources of a type nobody defined: the reference driver's first.
    await api(plane.apiUrl, 'POST', '/resource-definitions/apply', PIPELINE_DEFINITION);
    console.log(`applied the resource definition "${PIPELINE_DEFINITION.name}" (the reference driver's)`);
    await api(plane.apiUrl, 'POST', '/pipelines/', {
      name: 'hello-pipeline',
      resource: 'pipeline',
      steps: [
        { name: 'run', driver: DRIVER },
        { name: 'report', driver: REPORT_WRITER },
      ],
    });
    const created = await api(plane.apiUrl, 'POST', '/resources/', {
      name: `hello-${Date.now()}`,
      resource: 'pipeline',
      pipeline: 'hello-pipeline',
      spec: {
        // Step env values of 6+ characters are masked in the log: the token never shows.
        env: { GREETING: 'Hello', API_TOKEN: 's3cr3t-token' },
        steps: [
          { name: 'greet', run: 'echo "$GREETING from Conveyor (token: $API_TOKEN)"; uname -sr' },
          { name: 'count', run: 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done' },
        ],
      },
    });
    console.log(`submitted ${created.name}: run ${created.runid}; its log:`);
    const streaming = new AbortController();
    const [shellResult, reportResult] = [DRIVER, REPORT_WRITER].map((name) =>
      waitForResult(plane, created.runid, name),
    );
    console.log(`  its stored lines: GET ${logsUrl(plane.apiUrl, created.runid)}`);
    console.log(`  ${cancelHint(plane.natsUrl, created.runid, tlsEnv())}`);
    void streamLogs(plane.apiUrl, created.runid, streaming.signal);
    void printProgress(plane.nc, created.runid, streaming.signal);
    const { driverresult } = await shellResult;
    // The engine stops a pipeline at a failed step: the report step runs only after a success.
    const report = driverresult.success ? (await reportResult).driverresult : undefined;
    // Let the last live lines reach the terminal before the summary.
    await new Promise((r) => setTimeout(r, 200));
    streaming.abort();
    console.log(`\nresult: ${driverresult.success ? 'success' : 'failure'}: ${driverresult.message}`);
    console.log(JSON.stringify(driverresult.data, null, 2));
    if (report)
      console.log(`\n${REPORT_WRITER}: ${report.success ? 'success' : 'failure'}: ${report.message}`);
    const reported =
      report?.success === true &&
      (await printReport(
        plane.apiUrl,
        `${created.name}-report`,
        auth && (async () => (await auth.headers()).Authorization),
      ));
    if (once) {
      await stop();
      // --cancel: success is the run ending as cancelled, with its step's processes gone.
      if (cancelRequested) return driverresult.message?.startsWith('cancelled: ') ? 0 : 1;
      return reported ? 0 : 1;
    }
    console.log(
      `\nStill running. The last run's lines: GET ${logsUrl(plane.apiUrl, created.runid)}` +
        `\nSubmit more: curl -X POST ${plane.apiUrl}/resources -H 'Content-Type: application/json' -d '{...}'. Ctrl-C stops.`,
    );
    return new Promise<number>(() => undefined);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    await stop();
    return 1;
  }
}

void main().then((code) => process.exit(code));
