/**
 * What the orchestrator and a driver child process say to each other over the fork IPC channel.
 * Kept free of Nest and of the framework so the hand-written loop child loads nothing but nats.js.
 */

/** Passed to a driver child as its only argument (JSON). */
export interface DriverChildConfig {
  servers: string;
  driver: string;
  concurrency: number;
  /** 0: the handler returns at once; otherwise it awaits this long before returning. */
  handlerDelayMs: number;
  /** The logger section's drivers only: what to log, and for which run. */
  logging?: LoggingConfig;
  /** The footprint section's framework driver only: serve `/health` on this loopback port. */
  httpPort?: number;
}

export interface LoggingConfig {
  lines: number;
  /** The run the lines belong to: the one DriverMessage's `run_id` (the loop has no message). */
  runId: string;
  pipeline: string;
  /** The framework's Loki sink, when set (scenario (c)). */
  lokiUrl?: string;
}

/** Sent by a logging driver once its loop is done, before its result is published. */
export interface LoggedReport {
  type: 'logged';
  /** now() at handler start (the loop: just before its first line). */
  startedAt: number;
  /** now() right after the last logger call returned. */
  endedAt: number;
  lines: number;
  /** Sum of performance.now() deltas around each logger call (the loop: each line's publishes). */
  loggerMs: number;
  /** process.memoryUsage() right after the loop, in MiB: what a burst of lines costs to hold. */
  rssMiB: number;
  heapUsedMiB: number;
}

/** The framework's own counters (`DriverLogger.stats`), sent after its shutdown flush. */
export interface StatsReport {
  type: 'stats';
  stats: unknown;
}

/**
 * Where a framework driver's start-up went, sent right before `consuming`: now() after each step,
 * in order, and the modules in `require.cache` by package at that point.
 */
export interface StartupReport {
  type: 'startup';
  phases: { name: string; at: number }[];
  modules: Record<string, number>;
  /** now() and the monotonic clock (µs, as a .cpuprofile's timestamps) read together. */
  clock: { at: number; monotonicUs: number };
}

export type ChildToParent =
  | { type: 'consuming'; at: number }
  | { type: 'failed'; error: string }
  | LoggedReport
  | StatsReport
  | StartupReport;
export type ParentToChild = { type: 'stop' };

/**
 * Epoch milliseconds with sub-millisecond resolution. Both processes derive it from the same system
 * clock, so a start stamped in the child and an end stamped in the parent can be subtracted.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function readChildConfig(): DriverChildConfig {
  const raw = process.argv[2];
  if (!raw || !process.send) throw new Error('a driver child must be forked by the bench with its config');
  return JSON.parse(raw) as DriverChildConfig;
}

/** Stamps the start of the measured interval: call it right before the first pull. */
export function announceConsuming(): void {
  const message: ChildToParent = { type: 'consuming', at: now() };
  process.send!(message);
}

/** Sends a report and resolves once it is handed to the IPC channel (send is asynchronous). */
export function report(message: ChildToParent): Promise<void> {
  return new Promise((resolve, reject) =>
    process.send!(message, (err: Error | null) => (err ? reject(err) : resolve())),
  );
}

/** Reports a failure and exits non-zero once the report is on its way (send is asynchronous). */
export function failChild(err: unknown): void {
  const message: ChildToParent = {
    type: 'failed',
    error: err instanceof Error ? (err.stack ?? err.message) : String(err),
  };
  if (process.connected) process.send!(message, () => process.exit(1));
  else process.exit(1);
}

/**
 * Runs `stop` when the orchestrator asks, then exits. An orphaned child (the orchestrator died and
 * the IPC channel closed) exits at once so no driver keeps running behind a crashed bench.
 */
export function onStop(stop: () => Promise<void>): void {
  process.on('message', (message: ParentToChild) => {
    if (message?.type !== 'stop') return;
    stop().then(
      () => process.exit(0),
      (err) => failChild(err),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

/**
 * The package a loaded file (a path or a `file://` URL) belongs to: `@scope/name` or `name` below the
 * last `node_modules`, `@conveyor-ci/nestjs` for the library's own build, else `(driver)`.
 */
export function packageOf(file: string): string {
  const path = file.replace(/^file:\/\//, '');
  const at = path.lastIndexOf('/node_modules/');
  if (at < 0) return path.includes('/libs/conveyor/') ? '@conveyor-ci/nestjs' : '(driver)';
  const [first, second] = path.slice(at + '/node_modules/'.length).split('/');
  // The bench's own build lives in node_modules/.cache: that is not a package.
  if (first === '.cache') return path.includes('/libs/conveyor/') ? '@conveyor-ci/nestjs' : '(driver)';
  return first.startsWith('@') ? `${first}/${second}` : first;
}

/** How many of `files` each package holds. */
export function countByPackage(files: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const file of files) {
    const name = packageOf(file);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}
