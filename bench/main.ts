/**
 * `npm run bench`: starts its own nats-server on loopback, runs the benchmark sections and rewrites
 * their parts of docs/BENCHMARKS.md. Not part of `npm test`: figures depend on the machine.
 *
 * Env: BENCH_SECTIONS (comma list of `dispatch`, `logger`, `footprint`; default all three),
 * BENCH_ROUNDS (default 3), BENCH_LOGGER_ROUNDS (the logger section's, default BENCH_ROUNDS when
 * that is set, else 5), BENCH_MESSAGES (backlog of the no-op dispatch scenarios, default 20000; the
 * 50 ms scenario scales with it from 3200), BENCH_SLOW_MESSAGES (that one explicitly),
 * BENCH_LOG_LINES (lines of each logger scenario's run, default 100000), BENCH_ROUND_TIMEOUT_MS,
 * BENCH_STALL_MS (default 20000).
 * Footprint: BENCH_FOOTPRINT_COLD (cold starts per driver, default 5), BENCH_FOOTPRINT_SAMPLES (warm
 * latency samples, default 200), BENCH_FOOTPRINT_RUNS (runs of the leak check, default 10000),
 * BENCH_REFERENCE_MAIN (the reference driver's entry point, default dist/src/main.js).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BenchBroker } from './broker';
import { killAllChildren } from './driver-child';
import { runDispatch, type DispatchOptions } from './dispatch.bench';
import { runFootprint } from './footprint.bench';
import type { FootprintOptions } from './footprint.report';
import { runLogger, type LoggerOptions } from './logger.bench';
import { describeMachine, writeSection } from './report';

/**
 * The repository root: the first directory above the compiled file that holds the bench's sources.
 * The build output lives in node_modules/.cache (see bench/tsconfig.json), not next to them.
 */
function repositoryRoot(): string {
  for (let dir = __dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    if (existsSync(join(dir, 'bench', 'tsconfig.json')) && existsSync(join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no repository with bench/tsconfig.json above ${__dirname}`);
}

const ROOT = repositoryRoot();
const REPORT_FILE = join(ROOT, 'docs', 'BENCHMARKS.md');
const DEFAULT_MESSAGES = 20_000;
const DEFAULT_SLOW_MESSAGES = 3_200;
const DEFAULT_LOG_LINES = 100_000;
const SECTIONS = ['dispatch', 'logger', 'footprint'] as const;
type Section = (typeof SECTIONS)[number];

function intFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min)
    throw new Error(`${name}=${raw}: expected an integer >= ${min}`);
  return value;
}

function readOptions(): DispatchOptions {
  const messages = intFromEnv('BENCH_MESSAGES', DEFAULT_MESSAGES, 1);
  // Scaled with BENCH_MESSAGES so a quick try keeps the scenarios' relative lengths.
  const scaledSlow = Math.max(16, Math.round((DEFAULT_SLOW_MESSAGES * messages) / DEFAULT_MESSAGES));
  const roundTimeout = process.env.BENCH_ROUND_TIMEOUT_MS;
  return {
    rounds: intFromEnv('BENCH_ROUNDS', 3, 1),
    messages,
    slowMessages: intFromEnv('BENCH_SLOW_MESSAGES', scaledSlow, 1),
    roundTimeoutMs: roundTimeout ? intFromEnv('BENCH_ROUND_TIMEOUT_MS', 0, 1) : undefined,
    stallMs: intFromEnv('BENCH_STALL_MS', 20_000, 1),
  };
}

/**
 * More rounds than dispatch by default: a logger round is short (one run of each scenario), and its
 * ratio swings by a third between rounds on a shared machine, so three medians tell little apart.
 */
const DEFAULT_LOGGER_ROUNDS = 5;

function loggerOptions(): LoggerOptions {
  const { rounds, roundTimeoutMs, stallMs } = readOptions();
  return {
    rounds: intFromEnv('BENCH_LOGGER_ROUNDS', process.env.BENCH_ROUNDS ? rounds : DEFAULT_LOGGER_ROUNDS, 1),
    roundTimeoutMs,
    stallMs,
    lines: intFromEnv('BENCH_LOG_LINES', DEFAULT_LOG_LINES, 1),
  };
}

function footprintOptions(): FootprintOptions {
  return {
    coldStarts: intFromEnv('BENCH_FOOTPRINT_COLD', 5, 1),
    samples: intFromEnv('BENCH_FOOTPRINT_SAMPLES', 200, 1),
    leakRuns: intFromEnv('BENCH_FOOTPRINT_RUNS', 10_000, 1),
    referenceMain: process.env.BENCH_REFERENCE_MAIN || join(ROOT, 'dist', 'src', 'main.js'),
    bundles: {
      reference: join(__dirname, '..', 'bundles', 'reference', 'main.js'),
      minimal: join(__dirname, '..', 'bundles', 'minimal', 'main.js'),
    },
    stallMs: readOptions().stallMs,
  };
}

/** BENCH_SECTIONS, in the order given; an unknown name fails before anything runs. */
function readSections(): Section[] {
  const raw = process.env.BENCH_SECTIONS?.trim();
  if (!raw) return [...SECTIONS];
  const names = [
    ...new Set(
      raw
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean),
    ),
  ];
  const unknown = names.filter((name) => !(SECTIONS as readonly string[]).includes(name));
  if (unknown.length || !names.length)
    throw new Error(`BENCH_SECTIONS=${raw}: expected a comma list of ${SECTIONS.join(', ')}`);
  return names as Section[];
}

/** The command as a reader would retype it, with the BENCH_* settings that shaped these figures. */
function commandLine(): string {
  const settings = Object.entries(process.env)
    .filter(([key]) => key.startsWith('BENCH_'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${value} `)
    .join('');
  const run =
    process.env.npm_lifecycle_event === 'bench'
      ? 'npm run bench'
      : 'node node_modules/.cache/conveyor-bench/bench/main.js';
  return `${settings}${run}`;
}

let broker: BenchBroker | undefined;
let stopping: Promise<void> | undefined;
/** Set by SIGINT/SIGTERM: the signal handler owns the exit, and the round it broke is no failure. */
let interrupted = false;

/** Single-flight: the signal handler and the failing round it causes must not race to exit. */
function shutdown(): Promise<void> {
  stopping ??= (async () => {
    killAllChildren();
    // Bounded: an interrupted bench must not hang on its own cleanup (the server is SIGKILLed on exit anyway).
    await Promise.race([broker?.stop(), new Promise((r) => setTimeout(r, 5_000))]).catch(() => undefined);
  })();
  return stopping;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`\n${signal}: stopping drivers and nats-server`);
    void shutdown().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

async function main(): Promise<number> {
  // Every setting is read before the server starts: a typo fails at once, not after a section.
  const sections = readSections();
  const options = readOptions();
  const logging = loggerOptions();
  const footprint = footprintOptions();
  broker = await BenchBroker.start();
  const machine = describeMachine(broker.serverVersion);
  console.log(
    `nats-server ${machine.natsServer} on ${broker.url}; ${options.rounds} round(s); sections ${sections.join(', ')}`,
  );
  const context = { machine, command: commandLine(), date: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
  let code = 0;
  for (const section of sections) {
    const started = Date.now();
    if (section === 'dispatch') {
      console.log(`\n== dispatch: ${options.messages} messages (a, b), ${options.slowMessages} messages (c)`);
      const dispatch = await runDispatch(broker, options, context);
      writeSection(REPORT_FILE, 'dispatch', dispatch.markdown);
      // Missing targets are findings, reported in the file; a wrong result count means the figures lie.
      if (!dispatch.verified) code = 1;
    } else if (section === 'footprint') {
      console.log(
        `\n== footprint: ${footprint.coldStarts} cold starts per driver, ${footprint.samples} latency samples, ` +
          `leak check over ${footprint.leakRuns} runs`,
      );
      writeSection(REPORT_FILE, 'footprint', (await runFootprint(broker, footprint, context)).markdown);
    } else {
      console.log(`\n== logger: ${logging.lines} lines per run, ${logging.rounds} round(s)`);
      // Dropped lines and missed targets are findings, reported in the file, not failures.
      writeSection(REPORT_FILE, 'logger', (await runLogger(broker, logging, context)).markdown);
    }
    // Written per section: a later section that fails keeps the figures of the earlier ones.
    console.log(
      `\nwrote the ${section} section of ${REPORT_FILE} (${Math.round((Date.now() - started) / 1000)} s)`,
    );
  }
  return code;
}

main().then(
  async (code) => {
    if (interrupted) return;
    await shutdown();
    process.exit(code);
  },
  async (err) => {
    if (interrupted) return;
    console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : err}`);
    await shutdown();
    process.exit(1);
  },
);
