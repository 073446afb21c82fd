/**
 * The logger section: how many of a burst of run log lines a driver gets stored before its result,
 * and how fast, the framework's `ctx.logger` against a Go-style loop that awaits every line's PubAck.
 */
import { LokiServer } from '@conveyor-ci/testing';
import { BenchBroker, makeBenchEvents } from './broker';
import type { LoggedReport } from './child-protocol';
import { LineAuditor, type LineAudit } from './log-lines';
import { DriverChild, START_TIMEOUT_MS } from './driver-child';
import { renderLogger, type LoggerRound, type LoggerScenario, type Ratio } from './logger.report';
import { fmtInt, fmtRatio, median, type Machine } from './report';
import { sleep, within } from './wait';

export interface LoggerOptions {
  rounds: number;
  /** Lines each scenario logs in its one run. */
  lines: number;
  roundTimeoutMs?: number;
  stallMs: number;
}

const PRELOAD_TIMEOUT_MS = 30_000;
/** The framework's shutdown flushes each sink for up to 5 s (`logs.flushTimeoutMs`): room for that. */
const STOP_TIMEOUT_MS = 20_000;
/** How often the wait for the result checks the child and the stored count (for the stall check). */
const POLL_MS = 250;
/** The `stats` report comes over IPC around the child's exit: how long to wait for it after. */
const STATS_WAIT_MS = 2_000;
const AUDIT_TIMEOUT_MS = 120_000;

const SCENARIOS: LoggerScenario[] = [
  { key: 'go-loop', title: '(a) Go-style loop, one awaited PubAck per line', kind: 'log-loop', loki: false },
  { key: 'framework', title: '(b) framework, `ctx.logger.info`', kind: 'log-framework', loki: false },
  {
    key: 'framework-loki',
    title: '(c) framework, `ctx.logger.info`, Loki sink on',
    kind: 'log-framework',
    loki: true,
  },
];

/**
 * Waits for the result's arrival stamp. Throws on `timeoutMs`, when the stored line count stops
 * moving for `stallMs` before the result, or as soon as the driver process fails.
 */
async function untilResult(
  arrived: Promise<number>,
  broker: BenchBroker,
  child: DriverChild,
  limits: { timeoutMs: number; stallMs: number },
): Promise<number> {
  let at: number | undefined;
  let error: unknown;
  arrived.then(
    (stamp) => (at = stamp),
    (err: unknown) => (error = err ?? new Error('result watch failed')),
  );
  const started = Date.now();
  let stored = -1;
  let progressAt = started;
  for (;;) {
    if (at !== undefined) return at;
    if (error) throw error;
    const failed = child.failure();
    if (failed) throw failed;
    const count = await broker.storedLogLines();
    if (count !== stored) {
      stored = count;
      progressAt = Date.now();
    }
    if (Date.now() - started > limits.timeoutMs)
      throw new Error(`no result after ${limits.timeoutMs} ms (${fmtInt(stored)} lines stored)`);
    if (Date.now() - progressAt > limits.stallMs)
      throw new Error(`no result and no line stored for ${limits.stallMs} ms (${fmtInt(stored)} stored)`);
    await Promise.race([arrived.catch(() => undefined), sleep(POLL_MS)]);
  }
}

function auditLoki(loki: LokiServer, driver: string, lines: number): LineAudit {
  const auditor = new LineAuditor(lines);
  for (const entry of loki.entries({ driver })) auditor.add(entry.line);
  return auditor.result();
}

async function runRound(
  broker: BenchBroker,
  scenario: LoggerScenario,
  round: number,
  options: LoggerOptions,
): Promise<LoggerRound> {
  // New streams, driver name and run per round: an earlier round's lines never count for this one.
  const driver = `bench-log-${scenario.key}-r${round}`;
  const [event] = makeBenchEvents(1);
  await broker.reset();
  const loki = scenario.loki ? await LokiServer.start() : undefined;
  let watch: Awaited<ReturnType<BenchBroker['watchResult']>> | undefined;
  let child: DriverChild | undefined;
  try {
    watch = await broker.watchResult(event.runId);
    if (scenario.kind === 'log-framework') {
      // As in the dispatch section: the consumer, then the message, then the driver.
      await broker.createDriverConsumer(driver);
      await broker.preload(driver, [event], PRELOAD_TIMEOUT_MS);
    }
    const label = `${scenario.key} r${round}`;
    child = DriverChild.spawn(
      scenario.kind,
      {
        servers: broker.url,
        driver,
        concurrency: 1,
        handlerDelayMs: 0,
        logging: {
          lines: options.lines,
          runId: event.runId,
          pipeline: event.resource.pipeline ?? '',
          ...(loki ? { lokiUrl: loki.url } : {}),
        },
      },
      label,
      START_TIMEOUT_MS,
    );
    await child.consuming;
    const resultAt = await untilResult(watch.arrived, broker, child, {
      // Generous (a floor of 500 lines/s); the stall check fails a stuck round much sooner.
      timeoutMs: options.roundTimeoutMs ?? 60_000 + options.lines * 2,
      stallMs: options.stallMs,
    });
    // Counted before anything else: only lines stored by the time the result was are "before" it.
    const rawAtResult = await broker.storedLogLines();
    const lokiAtResult = loki?.entries({ driver }).length;
    // Sent before the result was published, so it is here already (or the child has failed).
    const logged: LoggedReport = await within(child.logged, 10_000, `${label}: the "logged" report`);
    await child.stop(STOP_TIMEOUT_MS);
    const deadline = Date.now() + STATS_WAIT_MS;
    while (scenario.kind === 'log-framework' && child.stats === undefined && Date.now() < deadline)
      await sleep(20);
    const results = await broker.storedResults();
    // By content, after the figure is taken: a message count alone would pass off the framework's
    // own lines (its drop notice) or an undetected duplicate as stored run lines.
    const stream = await broker.auditLogLines(event.runId, options.lines, AUDIT_TIMEOUT_MS);
    const seconds = (resultAt - logged.startedAt) / 1000;
    // Conservative: as if every other line and duplicate had been stored before the result.
    const storedAtResult = Math.max(
      0,
      Math.min(stream.distinct, rawAtResult - stream.others - stream.duplicates),
    );
    return {
      logged: logged.lines,
      rawAtResult,
      storedAtResult,
      storedAfterStop: stream.distinct,
      stream,
      ...(loki ? { loki: { atResult: lokiAtResult!, audit: auditLoki(loki, driver, options.lines) } } : {}),
      results,
      seconds,
      loopSeconds: (logged.endedAt - logged.startedAt) / 1000,
      rate: storedAtResult / seconds,
      loggerMs: logged.loggerMs,
      rssMiB: logged.rssMiB,
      heapUsedMiB: logged.heapUsedMiB,
      counters: child.stats,
    };
  } finally {
    // On failure, leave nothing behind; after a clean stop these are no-ops.
    await child?.stop(STOP_TIMEOUT_MS).catch(() => undefined);
    watch?.close();
    await loki?.close();
  }
}

function logRound(scenario: LoggerScenario, round: number, rounds: number, r: LoggerRound): void {
  const dropped = r.logged - r.storedAfterStop;
  const late = r.storedAfterStop - r.storedAtResult;
  const extra = [
    r.stream.others ? `${r.stream.others} other line(s), e.g. ${JSON.stringify(r.stream.otherSample)}` : '',
    r.stream.duplicates ? `${fmtInt(r.stream.duplicates)} DUPLICATES` : '',
  ].filter(Boolean);
  console.log(
    `round ${round}/${rounds}  ${scenario.key.padEnd(14)} ${fmtInt(r.logged)} logged, ` +
      `${fmtInt(r.storedAtResult)} stored before the result in ${r.seconds.toFixed(3)} s ` +
      `= ${fmtInt(r.rate)} lines/s; logger calls ${r.loggerMs.toFixed(1)} ms ` +
      `(${((r.loggerMs * 1000) / r.logged).toFixed(2)} µs/line), RSS ${r.rssMiB.toFixed(0)} MiB` +
      (late ? `; ${fmtInt(late)} stored after the result` : '') +
      (dropped ? `; DROPPED ${fmtInt(dropped)}` : '') +
      (r.loki ? `; Loki ${fmtInt(r.loki.audit.distinct)} (${fmtInt(r.loki.atResult)} at the result)` : '') +
      (extra.length ? `; stored ${extra.join(', ')}` : '') +
      (r.results === 1 ? '' : `; RESULTS ${r.results} != 1`),
  );
}

export async function runLogger(
  broker: BenchBroker,
  options: LoggerOptions,
  context: { machine: Machine; command: string; date: string },
): Promise<{ markdown: string }> {
  const results = new Map<string, LoggerRound[]>(SCENARIOS.map((s) => [s.key, []]));
  // Interleaved (a, b, c, then again), as in the dispatch section: a slow patch of the machine lands
  // on every scenario instead of on all rounds of one.
  for (let round = 1; round <= options.rounds; round++) {
    for (const scenario of SCENARIOS) {
      const r = await runRound(broker, scenario, round, options);
      results.get(scenario.key)!.push(r);
      logRound(scenario, round, options.rounds, r);
    }
  }
  await broker.reset();

  const medianRate = (key: string) => median(results.get(key)!.map((r) => r.rate));
  const ratios: Ratio[] = [
    { name: 'b / a (stored lines/s)', value: medianRate('framework') / medianRate('go-loop'), target: 20 },
    {
      name: 'c / b (stored lines/s)',
      value: medianRate('framework-loki') / medianRate('framework'),
      target: 0.8,
    },
  ];

  console.log('');
  for (const s of SCENARIOS) {
    const rounds = results.get(s.key)!;
    console.log(
      `median ${s.key.padEnd(14)} ${fmtInt(medianRate(s.key)).padStart(9)} stored lines/s, ` +
        `${fmtInt(median(rounds.map((r) => r.storedAtResult)))} of ${fmtInt(options.lines)} stored before the result`,
    );
  }
  for (const r of ratios) {
    console.log(
      `${r.name}: ${fmtRatio(r.value)} (target >= ${r.target.toFixed(2)}) ${r.value >= r.target ? 'PASS' : 'FAIL'}`,
    );
  }
  return { markdown: renderLogger(SCENARIOS, results, ratios, { ...options, pollMs: POLL_MS }, context) };
}
