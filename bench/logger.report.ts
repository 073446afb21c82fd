/**
 * The logger section's markdown: method, summary, one table per scenario, ratios and what the
 * figures show about dropped lines. Kept apart from the runner so each file reads on its own.
 */
import type { DriverKind } from './driver-child';
import { logLine, type LineAudit } from './log-lines';
import { fmtInt, fmtRatio, median, runConditions, table, type Machine } from './report';

export interface LoggerScenario {
  key: string;
  title: string;
  kind: DriverKind;
  loki: boolean;
}

export interface LoggerRound {
  logged: number;
  /** `logs-engine` messages right after the result arrived. */
  rawAtResult: number;
  /** Run lines of those: less the audit's other lines and duplicates (as if all came before). */
  storedAtResult: number;
  /** Distinct run lines stored once the driver process shut down (the audit's `distinct`). */
  storedAfterStop: number;
  /** `logs-engine` read back by content after the round. */
  stream: LineAudit;
  /** Loki entries of the round's driver when the result arrived, and their audit after stop. */
  loki?: { atResult: number; audit: LineAudit };
  /** Results in `pipeline-engine`: 1 unless something went wrong. */
  results: number;
  /** Handler (or loop) start to the result's arrival. */
  seconds: number;
  /** Handler (or loop) start to the last logger call's return. */
  loopSeconds: number;
  /** storedAtResult / seconds. */
  rate: number;
  loggerMs: number;
  rssMiB: number;
  heapUsedMiB: number;
  /** `DriverLogger.stats` after shutdown, as the framework reported it (shape not relied on). */
  counters?: unknown;
}

export interface Ratio {
  name: string;
  value: number;
  target: number;
}

const verdict = (r: Ratio) => (r.value >= r.target ? 'PASS' : 'FAIL');
const perLineUs = (r: LoggerRound) => (r.loggerMs * 1000) / r.logged;
const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)} %`;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The framework's own account of where its lines went, e.g. `conveyor 20,256 sent, 79,744 overflow`.
 * Read defensively: the counters belong to the logger, whose shape may change under the bench.
 */
export function describeCounters(stats: unknown): string {
  if (!isRecord(stats) || !isRecord(stats.sinks)) return 'not reported';
  return Object.entries(stats.sinks)
    .map(([name, sink]) => {
      if (!isRecord(sink)) return `${name}: ?`;
      const dropped = isRecord(sink.dropped)
        ? Object.entries(sink.dropped)
            .filter((entry): entry is [string, number] => typeof entry[1] === 'number' && entry[1] > 0)
            .map(([reason, n]) => `${fmtInt(n)} dropped (${reason})`)
        : [];
      const sent = typeof sink.sent === 'number' ? `${fmtInt(sink.sent)} sent` : 'sent ?';
      return [`${name}: ${sent}`, ...dropped].join(', ');
    })
    .join('; ');
}

function scenarioTable(s: LoggerScenario, rounds: LoggerRound[]): string {
  const dash = '–';
  const rows = rounds.map((r, i) => {
    const dropped = r.logged - r.storedAfterStop;
    return [
      String(i + 1),
      fmtInt(r.storedAtResult),
      fmtInt(r.storedAfterStop),
      dropped > 0 ? `**${fmtInt(dropped)}**` : '0',
      r.loki ? fmtInt(r.loki.audit.distinct) : dash,
      r.stream.others + r.stream.duplicates > 0 ? `**${r.stream.others} / ${r.stream.duplicates}**` : '0 / 0',
      r.seconds.toFixed(3),
      r.loopSeconds.toFixed(3),
      fmtInt(r.rate),
      r.loggerMs.toFixed(1),
      perLineUs(r).toFixed(2),
      `${r.rssMiB.toFixed(0)} / ${r.heapUsedMiB.toFixed(0)}`,
      r.results === 1 ? '1' : `**${r.results}**`,
    ];
  });
  const m = (f: (r: LoggerRound) => number) => median(rounds.map(f));
  rows.push([
    'median',
    fmtInt(m((r) => r.storedAtResult)),
    fmtInt(m((r) => r.storedAfterStop)),
    fmtInt(m((r) => r.logged - r.storedAfterStop)),
    s.loki ? fmtInt(m((r) => r.loki?.audit.distinct ?? 0)) : dash,
    '',
    m((r) => r.seconds).toFixed(3),
    m((r) => r.loopSeconds).toFixed(3),
    `**${fmtInt(m((r) => r.rate))}**`,
    m((r) => r.loggerMs).toFixed(1),
    m(perLineUs).toFixed(2),
    `${m((r) => r.rssMiB).toFixed(0)} / ${m((r) => r.heapUsedMiB).toFixed(0)}`,
    '',
  ]);
  const header = [
    'Round',
    'Stored before result',
    'Stored after stop',
    'Dropped',
    'Loki stored',
    'Other / duplicate lines stored',
    'Seconds to result',
    'Logging loop s',
    'Stored lines/s',
    'In logger calls, ms',
    'µs/line',
    'RSS / heap MiB after the loop',
    'Results',
  ];
  const out = [`### ${s.title}`, '', table([header, ...rows]), ''];
  if (s.kind === 'log-framework') {
    out.push(
      "The framework's own counters (`DriverLogger.stats` after shutdown):",
      '',
      ...rounds.map((r, i) => `- round ${i + 1}: ${describeCounters(r.counters)}`),
      '',
    );
  }
  return out.join('\n');
}

/** One sentence on what a store held besides the run's lines, when it held anything. */
function strays(where: string, audits: LineAudit[]): string[] {
  const others = Math.max(...audits.map((a) => a.others));
  const duplicates = Math.max(...audits.map((a) => a.duplicates));
  const out: string[] = [];
  if (others > 0) {
    const sample = audits.find((a) => a.otherSample)?.otherSample ?? '';
    out.push(
      `${where} also held up to ${fmtInt(others)} line(s) per round that the handler did not log, e.g. ` +
        `\`${sample.replace(/`/g, "'").slice(0, 160)}\`; they count neither as stored nor as dropped.`,
    );
  }
  if (duplicates > 0) out.push(`${where} held **up to ${fmtInt(duplicates)} duplicate lines** per round.`);
  return out;
}

/** Plain statements of what was lost or odd, from the figures of this run. */
function findings(list: LoggerScenario[], results: Map<string, LoggerRound[]>, lines: number): string[] {
  const out: string[] = [];
  for (const s of list) {
    const rounds = results.get(s.key)!;
    const notes: string[] = [];
    const dropped = median(rounds.map((r) => r.logged - r.storedAfterStop));
    const late = Math.max(...rounds.map((r) => r.storedAfterStop - r.storedAtResult));
    if (dropped > 0) {
      notes.push(
        `a median of **${fmtInt(dropped)} of ${fmtInt(lines)} lines (${pct(dropped, lines)}) never reached ` +
          '`logs-engine`**; the stored-lines/s figure counts only stored lines.',
      );
    }
    if (late > 0) {
      notes.push(
        `up to ${fmtInt(late)} lines per round were stored only after the result (or could not be told ` +
          'apart from lines stored after it); they are not counted as stored before it.',
      );
    }
    notes.push(
      ...strays(
        '`logs-engine`',
        rounds.map((r) => r.stream),
      ),
    );
    if (s.loki) {
      const audits = rounds.map((r) => r.loki!.audit);
      const lost = median(audits.map((a) => lines - a.distinct));
      notes.push(
        `Loki held a median of ${fmtInt(median(rounds.map((r) => r.loki!.atResult)))} entries when the ` +
          `result was stored (its sink never delays a result) and ${fmtInt(lines - lost)} of the ` +
          "run's lines after the driver's shutdown flush" +
          (lost > 0 ? `: **${fmtInt(lost)} (${pct(lost, lines)}) never reached Loki**.` : '.'),
        ...strays('Loki', audits),
      );
    }
    if (notes.length) out.push(`- ${s.title}: ${notes.join(' ')}`);
  }
  return out;
}

export function renderLogger(
  list: LoggerScenario[],
  results: Map<string, LoggerRound[]>,
  ratios: Ratio[],
  options: { rounds: number; lines: number; pollMs: number },
  { machine, command, date }: { machine: Machine; command: string; date: string },
): string {
  const n = fmtInt(options.lines);
  const sample = logLine(options.lines, options.lines);
  const lost = findings(list, results, options.lines);
  return [
    '## Logger',
    '',
    `How much of a burst of ${n} run log lines a driver gets stored before its result, and how fast:`,
    "the framework's `ctx.logger` against a Go-style logger that awaits each line's PubAck, on the",
    'same nats-server with the same line texts.',
    '',
    ...runConditions(machine, command, date, options.rounds),
    '',
    `**Method.** Each round is one run that logs ${n} distinct lines of a compiler step's output, the`,
    `last one \`${sample}\` (${Buffer.byteLength(sample)} bytes). Every round starts from new streams`,
    '(as the Conveyor server creates them), a new driver name and run id, and a fresh Node process for',
    'the driver. The clock starts in that process (the loop: just before its first line; the framework: on',
    "entering the handler) and stops when the result reaches the orchestrator's core subscription on",
    '`pipelines.driver.result` (the server hands a publish to its stream and to core subscribers in',
    'the same pass); both stamps are `performance.timeOrigin + performance.now()` on this machine.',
    'Right then the orchestrator reads the message count of `logs-engine` (stream info; nothing',
    'consumes it). After the driver has shut down (the framework flushes its sinks on close, up to',
    '`logs.flushTimeoutMs`) it reads the whole stream back and counts by content: a stored line counts',
    'once, and only if it is byte for byte one the handler logged; anything else (such as a notice the',
    'framework adds) and duplicates are listed apart. **Stored before the result** = the count at the',
    'result less those extra lines (as if all of them came before it), **stored lines/s** = that /',
    'seconds to the result, **dropped = logged − distinct lines stored**. "In logger calls" is the sum of',
    '`performance.now()` deltas around each call (the line text is built outside them), so what a',
    'handler spends logging; it includes the two clock reads per line. While waiting, the orchestrator',
    `checks the stored count every ${options.pollMs} ms (a round with no new line for \`BENCH_STALL_MS\` fails).`,
    '',
    '- (a) Go-style loop, in Node: per line, the Conveyor Log JSON `{runid, driver, pipeline,',
    '  timestamp, message}` (unix-seconds timestamp, as Go writes it; no `Nats-Msg-Id`), `await',
    '  js.publish("logs.<runId>")`, then core `nc.publish("live.logs.<runId>.<driver>")`; then the',
    '  result to `pipelines.driver.result`, awaited. No consumer, no DriverMessage.',
    '- (b) a Nest app with `ConveyorModule.forRoot({ driverName, servers, concurrency: 1 })` (logger',
    "  defaults) and one `@Reconcile({ resource: 'pipeline' })` handler that calls `ctx.logger.info(line)`",
    `  ${n} times in a synchronous loop and returns \`{ success: true }\`. One DriverMessage is preloaded`,
    "  for it, as in the dispatch section. The runtime stores a run's lines before its result.",
    '- (c) as (b) with `loki: { url }` of a `LokiServer` (the Loki stand-in of `@conveyor-ci/testing`)',
    "  started per round in the orchestrator's process on loopback; its entries with the round's",
    `  \`driver\` label are counted at the result and after stop. It shares the machine's ${machine.cores}`,
    '  cores with the driver and nats-server.',
    '',
    '### Summary',
    '',
    table([
      [
        'Scenario',
        'Logged',
        'Median stored lines/s',
        'Rounds (lines/s)',
        'Stored before result',
        'Dropped',
        'Loki stored',
        'In logger calls',
      ],
      ...list.map((s) => {
        const rounds = results.get(s.key)!;
        const m = (f: (r: LoggerRound) => number) => median(rounds.map(f));
        const dropped = m((r) => r.logged - r.storedAfterStop);
        return [
          s.title,
          n,
          `**${fmtInt(m((r) => r.rate))}**`,
          rounds.map((r) => fmtInt(r.rate)).join(', '),
          fmtInt(m((r) => r.storedAtResult)),
          dropped > 0 ? `**${fmtInt(dropped)}**` : '0',
          s.loki ? fmtInt(m((r) => r.loki?.audit.distinct ?? 0)) : '–',
          `${m((r) => r.loggerMs).toFixed(0)} ms (${m(perLineUs).toFixed(2)} µs/line)`,
        ];
      }),
    ]),
    '',
    ...list.map((s) => scenarioTable(s, results.get(s.key)!)),
    '### Ratios',
    '',
    table([
      ['Ratio (of medians)', 'Value', 'Target', 'Verdict'],
      ...ratios.map((r) => [r.name, fmtRatio(r.value), `≥ ${r.target.toFixed(2)}`, verdict(r)]),
    ]),
    '',
    ...(lost.length ? ['**Findings.**', '', ...lost, ''] : ['No line was lost in any round.', '']),
  ].join('\n');
}
