/**
 * The dispatch section: how fast a driver turns a preloaded backlog of pipeline steps into stored
 * results and acks, the framework against a hand-written nats.js loop doing the same wire work.
 */
import { BenchBroker, makeBenchEvents, type BenchEvent, type BrokerTally } from './broker';
import { DriverChild, START_TIMEOUT_MS, type DriverKind } from './driver-child';
import { fmtInt, fmtRatio, median, runConditions, table, type Machine } from './report';

export interface DispatchOptions {
  rounds: number;
  /** Backlog of scenarios (a) and (b). */
  messages: number;
  /** Backlog of scenario (c). */
  slowMessages: number;
  roundTimeoutMs?: number;
  stallMs: number;
}

interface Scenario {
  key: string;
  title: string;
  kind: DriverKind;
  concurrency: number;
  handlerDelayMs: number;
  messages: number;
}

interface Round extends BrokerTally {
  messages: number;
  seconds: number;
  rate: number;
}

export interface DispatchOutcome {
  markdown: string;
  /** False when some round stored a different number of results than it had messages. */
  verified: boolean;
}

const SLOW_HANDLER_MS = 50;
const SLOW_CONCURRENCY = 16;
const PRELOAD_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 15_000;

function scenarios(options: DispatchOptions): Scenario[] {
  const plain = (kind: DriverKind, concurrency: number): Scenario => ({
    key: `${kind}-c${concurrency}`,
    title:
      kind === 'loop'
        ? `(a) hand-written nats.js loop, concurrency ${concurrency}`
        : `(b) framework, no-op handler, concurrency ${concurrency}`,
    kind,
    concurrency,
    handlerDelayMs: 0,
    messages: options.messages,
  });
  return [
    plain('loop', 1),
    plain('framework', 1),
    plain('loop', 16),
    plain('framework', 16),
    {
      key: `slow-c${SLOW_CONCURRENCY}`,
      title: `(c) framework, ${SLOW_HANDLER_MS} ms handler, concurrency ${SLOW_CONCURRENCY}`,
      kind: 'framework',
      concurrency: SLOW_CONCURRENCY,
      handlerDelayMs: SLOW_HANDLER_MS,
      messages: options.slowMessages,
    },
  ];
}

async function runRound(
  broker: BenchBroker,
  scenario: Scenario,
  events: BenchEvent[],
  round: number,
  options: DispatchOptions,
): Promise<Round> {
  // A new driver name and new streams per round: nothing of an earlier round (backlog, results,
  // de-duplication window, consumer state) is there to help or hinder this one.
  const driver = `bench-${scenario.key}-r${round}`;
  await broker.reset();
  await broker.createDriverConsumer(driver);
  const backlog = events.slice(0, scenario.messages);
  const lastSeq = await broker.preload(driver, backlog, PRELOAD_TIMEOUT_MS);

  const label = `${scenario.key} r${round}`;
  const child = DriverChild.spawn(
    scenario.kind,
    {
      servers: broker.url,
      driver,
      concurrency: scenario.concurrency,
      handlerDelayMs: scenario.handlerDelayMs,
    },
    label,
    START_TIMEOUT_MS,
  );
  try {
    const startedAt = await child.consuming;
    const endedAt = await broker.waitAllAcked(driver, lastSeq, {
      // Generous bound (a floor of 100 msg/s); the stall check fails a stuck round much sooner.
      timeoutMs: options.roundTimeoutMs ?? 30_000 + backlog.length * 10,
      stallMs: options.stallMs,
      failure: () => child.failure(),
    });
    const tally = await broker.tally(driver);
    const seconds = (endedAt - startedAt) / 1000;
    // The figure is already taken: a driver slow to exit is worth a warning, not a lost round.
    await child.stop(STOP_TIMEOUT_MS).catch((err: Error) => console.warn(`warning: ${err.message}`));
    return { ...tally, messages: backlog.length, seconds, rate: backlog.length / seconds };
  } finally {
    // On failure, leave nothing behind; after a clean stop this is a no-op.
    await child.stop(STOP_TIMEOUT_MS).catch(() => undefined);
  }
}

function logRound(scenario: Scenario, round: number, rounds: number, r: Round): void {
  const checks = r.results === r.messages ? '' : `  RESULTS ${fmtInt(r.results)} != ${fmtInt(r.messages)}`;
  console.log(
    `round ${round}/${rounds}  ${scenario.key.padEnd(14)} ${fmtInt(r.messages).padStart(7)} msgs ` +
      `${r.seconds.toFixed(3).padStart(8)} s ${fmtInt(r.rate).padStart(7)} msg/s  ` +
      `deliveries ${fmtInt(r.deliveries)}, redelivered ${r.redelivered}, log msgs ${r.logLines}${checks}`,
  );
}

export async function runDispatch(
  broker: BenchBroker,
  options: DispatchOptions,
  context: { machine: Machine; command: string; date: string },
): Promise<DispatchOutcome> {
  const list = scenarios(options);
  const events = makeBenchEvents(Math.max(...list.map((s) => s.messages)));
  const results = new Map<string, Round[]>(list.map((s) => [s.key, []]));
  // Rounds are interleaved (a, b, a, b, c, then again) so a slow patch of the machine (a noisy
  // neighbour, a thermal dip) lands on every scenario instead of on all rounds of one.
  for (let round = 1; round <= options.rounds; round++) {
    for (const scenario of list) {
      const r = await runRound(broker, scenario, events, round, options);
      results.get(scenario.key)!.push(r);
      logRound(scenario, round, options.rounds, r);
    }
  }
  await broker.reset();

  const medianRate = (key: string) => median(results.get(key)!.map((r) => r.rate));
  const ideal = SLOW_CONCURRENCY / (SLOW_HANDLER_MS / 1000);
  const ratios = [
    {
      name: 'b / a at concurrency 1',
      value: medianRate('framework-c1') / medianRate('loop-c1'),
      target: 0.9,
    },
    {
      name: 'b / a at concurrency 16',
      value: medianRate('framework-c16') / medianRate('loop-c16'),
      target: 1.0,
    },
    {
      name: `c / ideal ${fmtInt(ideal)} msg/s (${SLOW_CONCURRENCY} / ${SLOW_HANDLER_MS / 1000} s)`,
      value: medianRate(`slow-c${SLOW_CONCURRENCY}`) / ideal,
      target: 0.9,
    },
  ];
  const verified = [...results.values()].every((rounds) => rounds.every((r) => r.results === r.messages));

  console.log('');
  for (const s of list)
    console.log(`median ${s.key.padEnd(14)} ${fmtInt(medianRate(s.key)).padStart(7)} msg/s`);
  for (const r of ratios) {
    console.log(
      `${r.name}: ${fmtRatio(r.value)} (target >= ${r.target.toFixed(2)}) ${verdict(r.value, r.target)}`,
    );
  }
  if (!verified)
    console.log('VERIFICATION FAILED: some round stored a different number of results than messages');

  return { markdown: render(list, results, ratios, options, context), verified };
}

function verdict(value: number, target: number): string {
  return value >= target ? 'PASS' : 'FAIL';
}

function render(
  list: Scenario[],
  results: Map<string, Round[]>,
  ratios: { name: string; value: number; target: number }[],
  options: DispatchOptions,
  { machine, command, date }: { machine: Machine; command: string; date: string },
): string {
  const out: string[] = [
    '## Dispatch',
    '',
    'How fast a driver turns a preloaded backlog of pipeline steps into stored results and acks: the',
    'framework (`@conveyor-ci/nestjs`) against a hand-written nats.js loop doing the same at-least-once',
    'wire work, on the same nats-server and the same event bytes.',
    '',
    ...runConditions(machine, command, date, options.rounds),
    '',
    '**Method.** Each round starts from new streams (as the Conveyor server creates them) and a new',
    'driver name. The orchestrator creates the durable consumer as the runtime does (filters',
    '`resources.pipeline` and `drivers.<driver>.resources.pipeline`, explicit ack, deliver all,',
    '`max_ack_pending` 1000, `ack_wait` 30 s), publishes the backlog as the server does (a',
    '`DriverMessage` with a Go-encoded `Resource` string as `payload`, a 24-hex `id` and a UUID v4',
    '`run_id`) and only then forks a fresh Node process for the driver, so no scenario inherits',
    "another's JIT or GC state. The clock starts when the driver starts consuming (the loop: just",
    'before its first pull; the framework: after `connectConveyor` and `strategy.whenConsuming()`) and',
    'stops when the broker reports every message acked (consumer info polled every 20 ms over the',
    "orchestrator's own connection: nothing pending, nothing unacked, ack floor at the last sequence).",
    "Then the result count in `pipeline-engine` (nothing consumes it) and the consumer's",
    '`delivered.consumer_seq` are checked.',
    '',
    '- (a) nats.js loop: pulls only as many messages as it has free slots (`consumer.fetch`), decodes',
    '  each message and its payload, publishes the `driver.result` event to `pipelines.driver.result`',
    '  with `Nats-Msg-Id` and awaits the PubAck, then `msg.ack()`. Up to N messages in flight.',
    '- (b) a Nest app with `ConveyorModule.forRoot({ driverName, servers, concurrency: N })` and one',
    "  controller whose `@Reconcile({ resource: 'pipeline' })` handler returns `{ success: true }`.",
    `- (c) as (b), the handler awaiting ${SLOW_HANDLER_MS} ms, concurrency ${SLOW_CONCURRENCY}: ` +
      `${fmtInt(options.slowMessages)} messages (ideal ${SLOW_CONCURRENCY} / ${SLOW_HANDLER_MS / 1000} s = ` +
      `${fmtInt(SLOW_CONCURRENCY / (SLOW_HANDLER_MS / 1000))} msg/s, about ` +
      `${Math.round(options.slowMessages / (SLOW_CONCURRENCY / (SLOW_HANDLER_MS / 1000)))} s a round).`,
    '',
    '### Summary',
    '',
    table([
      ['Scenario', 'Messages', 'Median msg/s', 'Rounds (msg/s)'],
      ...list.map((s) => {
        const rounds = results.get(s.key)!;
        return [
          s.title,
          fmtInt(s.messages),
          `**${fmtInt(median(rounds.map((r) => r.rate)))}**`,
          rounds.map((r) => fmtInt(r.rate)).join(', '),
        ];
      }),
    ]),
    '',
  ];
  for (const s of list) {
    const rounds = results.get(s.key)!;
    out.push(
      `### ${s.title}`,
      '',
      table([
        ['Round', 'Messages', 'Seconds', 'msg/s', 'Results stored', 'Deliveries', 'Redelivered'],
        ...rounds.map((r, i) => [
          String(i + 1),
          fmtInt(r.messages),
          r.seconds.toFixed(3),
          fmtInt(r.rate),
          r.results === r.messages
            ? fmtInt(r.results)
            : `**${fmtInt(r.results)} (expected ${fmtInt(r.messages)})**`,
          fmtInt(r.deliveries),
          fmtInt(r.redelivered),
        ]),
        [
          'median',
          '',
          median(rounds.map((r) => r.seconds)).toFixed(3),
          `**${fmtInt(median(rounds.map((r) => r.rate)))}**`,
          '',
          '',
          '',
        ],
      ]),
      '',
    );
  }
  out.push(
    '### Ratios',
    '',
    table([
      ['Ratio (of medians)', 'Value', 'Target', 'Verdict'],
      ...ratios.map((r) => [
        r.name,
        fmtRatio(r.value),
        `≥ ${r.target.toFixed(2)}`,
        verdict(r.value, r.target),
      ]),
    ]),
    '',
    'For scale: the upstream Conveyor Go runtime 0.6.6 measured 2,541 msg/s with a no-op handler and',
    `20 msg/s with a ${SLOW_HANDLER_MS} ms handler on this kind of machine (not re-measured here: no Go toolchain).`,
  );
  return out.join('\n');
}
