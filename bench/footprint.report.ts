/** The footprint section's markdown: figures, ratios against the loop, and the cold start's phases. */
import type { StartupProfile } from './cpu-profile';
import { relative } from 'node:path';
import type { StartupReport } from './child-protocol';
import { fmtInt, fmtRatio, median, runConditions, table, type Machine } from './report';

export interface FootprintOptions {
  /** Cold starts per driver (the median is the figure). */
  coldStarts: number;
  /** Warm latency samples after the warm-up. */
  samples: number;
  /** Runs before the second RSS reading of the leak check. */
  leakRuns: number;
  /** The reference driver's entry point (`npm run build` output). */
  referenceMain: string;
  /** `conveyor-nestjs bundle` output of the reference driver and of the minimal driver (main.js). */
  bundles: { reference: string; minimal: string };
  stallMs: number;
}

export type FootprintKey = 'loop' | 'minimal' | 'reference' | 'minimal-bundle' | 'reference-bundle';

export interface FootprintDriver {
  key: FootprintKey;
  title: string;
  /** Serves `/health/ready`. */
  health: boolean;
}

export const DRIVERS: FootprintDriver[] = [
  { key: 'loop', title: 'bare nats.js loop (the floor)', health: false },
  { key: 'minimal', title: 'minimal framework driver (no-op `@Reconcile`, `/health`)', health: true },
  { key: 'reference', title: 'reference driver (`dist/src/main.js`)', health: true },
  { key: 'minimal-bundle', title: 'minimal driver, `conveyor-nestjs bundle` build', health: true },
  { key: 'reference-bundle', title: 'reference driver, `conveyor-nestjs bundle` build', health: true },
];

export interface ColdStart {
  /** Spawn to the stored result of the event published before the spawn, ms. */
  resultMs: number;
  /** Spawn to the first 200 of `/health/ready`, ms. */
  readyMs?: number;
  spawnedAt: number;
  resultAt: number;
  startup?: StartupReport;
}

export interface Steady {
  p50Ms: number;
  p99Ms: number;
  idleRssMiB: number;
  /** Of one core, over the idle window. */
  idleCpuPercent: number;
  /** Voluntary context switches of all threads per second over the idle window. */
  idleWakeupsPerSecond: number;
  idleSeconds: number;
  /** RSS after FIRST_RSS_RUNS, MID_RSS_RUNS (when below the last) and all the runs, in order. */
  rss: { runs: number; mib: number }[];
}

export interface FootprintResult {
  driver: FootprintDriver;
  /** Why it was not measured (the reference driver's build is missing). */
  skipped?: string;
  /** Cold starts without probes: the first-result figures and the start-up phases. */
  cold: ColdStart[];
  /** Cold starts with `/health/ready` polled (the framework drivers): the readiness figures. */
  probed: ColdStart[];
  steady?: Steady;
}

export const WARMUP_EVENTS = 20;
/** RSS is read once the driver has done this many runs, and again after `leakRuns`. */
export const FIRST_RSS_RUNS = 100;
export const MID_RSS_RUNS = 1_000;
/** The reference driver spawns a shell per run (tens of ms): its leak check stops here. */
export const REFERENCE_LEAK_RUNS = 1_000;

export const SETTLE_MS = 3_000;
export const IDLE_MS = 10_000;
export const READY_POLL_MS = 5;
export interface Verdict {
  name: string;
  value: number;
  target: string;
  verdict: 'PASS' | 'FAIL' | 'n/a';
}

/** Packages and profile rows listed in the breakdown; the rest are summed in one row. */
const TOP = 12;

const ms = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 'n/a' : fmtInt(n));
const ms2 = (n: number | undefined) => (n === undefined ? 'n/a' : n.toFixed(2));
const mib = (n: number | undefined) => (n === undefined ? 'n/a' : n.toFixed(1));

function coldMedian(r: FootprintResult | undefined): number | undefined {
  return r?.cold.length ? median(r.cold.map((c) => c.resultMs)) : undefined;
}

function readyMedian(r: FootprintResult): number | undefined {
  const ready = r.probed.flatMap((c) => (c.readyMs === undefined ? [] : [c.readyMs]));
  return ready.length ? median(ready) : undefined;
}

/** `value <= limit`, or n/a when either side was not measured. */
function atMost(name: string, value: number | undefined, limit: number, target: string): Verdict {
  if (value === undefined || !Number.isFinite(value)) return { name, value: NaN, target, verdict: 'n/a' };
  return { name, value, target, verdict: value <= limit ? 'PASS' : 'FAIL' };
}

function verdicts(results: FootprintResult[], options: FootprintOptions): Verdict[] {
  const of = (key: FootprintKey) => results.find((r) => r.driver.key === key && !r.skipped);
  const [loop, minimal, reference] = [of('loop'), of('minimal'), of('reference')];
  const [minimalBundle, referenceBundle] = [of('minimal-bundle'), of('reference-bundle')];
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : a / b;
  const loopCold = coldMedian(loop);
  const idleCpu = (r: FootprintResult | undefined) => r?.steady?.idleCpuPercent;
  // Idle CPU against the loop's: a difference, the loop's may be 0 (within the tick resolution).
  const cpuDiff =
    idleCpu(minimal) === undefined || idleCpu(loop) === undefined
      ? undefined
      : // To the readings' own resolution: 0.3 - 0.3 in floating point is not always 0.
        Math.round((idleCpu(minimal)! - idleCpu(loop)!) * 100) / 100;
  return [
    atMost('minimal / loop cold start', ratio(coldMedian(minimal), loopCold), 2, '≤ 2.00'),
    atMost('reference / loop cold start', ratio(coldMedian(reference), loopCold), 2.5, '≤ 2.50'),
    atMost('bundled minimal / loop cold start', ratio(coldMedian(minimalBundle), loopCold), 2, '≤ 2.00'),
    atMost(
      'bundled reference / loop cold start',
      ratio(coldMedian(referenceBundle), loopCold),
      2.5,
      '≤ 2.50',
    ),
    atMost(
      'minimal / loop idle RSS',
      ratio(minimal?.steady?.idleRssMiB, loop?.steady?.idleRssMiB),
      1.25,
      '≤ 1.25',
    ),
    atMost(
      'bundled minimal / loop idle RSS',
      ratio(minimalBundle?.steady?.idleRssMiB, loop?.steady?.idleRssMiB),
      1.25,
      '≤ 1.25',
    ),
    atMost(
      `minimal RSS after ${fmtInt(options.leakRuns)} / after ${FIRST_RSS_RUNS} runs`,
      ratio(minimal?.steady?.rss.at(-1)?.mib, minimal?.steady?.rss[0].mib),
      1.1,
      '≤ 1.10',
    ),
    atMost('minimal / loop warm p50', ratio(minimal?.steady?.p50Ms, loop?.steady?.p50Ms), 1.1, '≤ 1.10'),
    atMost('minimal / loop warm p99', ratio(minimal?.steady?.p99Ms, loop?.steady?.p99Ms), 1.3, '≤ 1.30'),
    atMost('minimal − loop idle CPU (percentage points)', cpuDiff, 0, '≤ 0.00'),
  ];
}

/** Median duration of each phase of the minimal driver's cold starts, spawn to first result. */
function phaseRows(minimal: FootprintResult | undefined): string[][] {
  const starts = (minimal?.cold ?? []).filter((c) => c.startup);
  if (!starts.length) return [];
  const names = [
    ...starts[0].startup!.phases.map((p) => p.name),
    'first event: fetch, handler, result stored',
  ];
  const durations = starts.map((c) => {
    const stamps = [c.spawnedAt, ...c.startup!.phases.map((p) => p.at), c.resultAt];
    return stamps.slice(1).map((at, i) => at - stamps[i]);
  });
  let elapsed = 0;
  const rows = names.map((name, i) => {
    const phase = median(durations.map((d) => d[i]));
    elapsed += phase;
    return [name, ms(phase), ms(elapsed)];
  });
  return [...rows, ['spawn to first result (median of the whole)', ms(coldMedian(minimal)), '']];
}

/** What issue 28 wants loaded only when its feature is configured (`@opentelemetry/*` as one). */
const ON_DEMAND = ['jose', 'axios', '@nestjs/axios', 'ajv', 'eventsource-parser', '@opentelemetry/*', 'pino'];

function onDemandRows(minimal: FootprintResult | undefined, profile: StartupProfile | undefined): string[][] {
  const modules = minimal?.cold.find((c) => c.startup)?.startup?.modules ?? {};
  const matches = (pattern: string, name: string) =>
    // A profile node may carry no package name (native code, idle): it matches nothing.
    typeof name === 'string' &&
    (pattern.endsWith('/*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern);
  const sum = (entries: [string, number][], pattern: string) =>
    entries.filter(([name]) => matches(pattern, name)).reduce((total, [, n]) => total + n, 0);
  const sampled = (profile?.byPackage ?? []).map((p): [string, number] => [p.name, p.ms]);
  return ON_DEMAND.map((pattern) => [
    `\`${pattern}\``,
    fmtInt(sum(Object.entries(modules), pattern)),
    profile ? ms(sum(sampled, pattern)) : 'n/a',
  ]);
}

function moduleRows(minimal: FootprintResult | undefined): string[][] {
  const modules = minimal?.cold.find((c) => c.startup)?.startup?.modules;
  if (!modules) return [];
  const sorted = Object.entries(modules).sort((a, b) => b[1] - a[1]);
  const rest = sorted.slice(TOP).reduce((sum, [, n]) => sum + n, 0);
  return [
    ...sorted.slice(0, TOP).map(([name, n]) => [`\`${name}\``, fmtInt(n)]),
    ...(rest ? [[`${sorted.length - TOP} other packages`, fmtInt(rest)]] : []),
    ['**total**', `**${fmtInt(sorted.reduce((sum, [, n]) => sum + n, 0))}**`],
  ];
}

function profileRows(profile: StartupProfile): string[][] {
  // Packages by time, then what is no package's code (idle, GC, native, Node's own) in its own rows.
  const special = (name: string) => String(name).startsWith('(') && name !== '(driver)';
  const listed = [
    ...profile.byPackage.filter((p) => !special(p.name)).slice(0, TOP),
    ...profile.byPackage.filter((p) => special(p.name)),
  ];
  const rest = profile.totalMs - listed.reduce((sum, p) => sum + p.ms, 0);
  const share = (n: number) => `${((n / profile.totalMs) * 100).toFixed(0)} %`;
  return [
    ...listed.map((p) => [special(p.name) ? p.name : `\`${p.name}\``, ms(p.ms), share(p.ms)]),
    ...(rest > 0.5 ? [['the other packages', ms(rest), share(rest)]] : []),
    ['**sampled, process start to consuming**', `**${ms(profile.totalMs)}**`, '100 %'],
    [
      'of which under `require()` (CommonJS loader on the stack)',
      ms(profile.requireMs),
      share(profile.requireMs),
    ],
  ];
}

export function renderFootprint(
  results: FootprintResult[],
  profile: StartupProfile | undefined,
  options: FootprintOptions,
  { machine, command, date }: { machine: Machine; command: string; date: string },
): { markdown: string; verdicts: Verdict[] } {
  const checks = verdicts(results, options);
  const minimal = results.find((r) => r.driver.key === 'minimal');
  const minimalBundle = results.find((r) => r.driver.key === 'minimal-bundle');
  const out: string[] = [
    '## Footprint',
    '',
    'What a driver costs to start, to keep idle and to answer one event: the reference driver and a',
    'minimal framework driver against a bare nats.js loop (the floor for a Node driver), in the same',
    'run, on the same nats-server (issue 28).',
    '',
    ...runConditions(machine, command, date, options.coldStarts).slice(0, 4),
    `- ${options.coldStarts} cold start${options.coldStarts === 1 ? '' : 's'} per driver, interleaved; the median is the figure; ` +
      'then one more process per driver for the steady state',
    '',
    "**Method.** Drivers: the bare loop of the dispatch section (a); the dispatch section's framework",
    'driver (b) with `ConveyorHealthModule` imported and `app.listen` on a loopback port, concurrency 1;',
    `the reference shell-runner driver, \`node ${relative(process.cwd(), options.referenceMain)}\` as built by`,
    '`npm run build`, configured by `CONVEYOR_DRIVER_NAME`, `CONVEYOR_NATS_URL`, `PORT` and `HOST`, at its',
    'default log level; and both of those built by `conveyor-nestjs bundle` (one minified file started',
    "with V8's code cache, primed by the command's own 3 s start; the bench builds them before the first",
    'cold start). Every event is a pipeline with one step, `true` (the reference driver runs it;',
    'the others ignore it). *Cold start*: new streams, the durable consumer as the runtime creates it,',
    'one event stored, then the orchestrator stamps the clock and forks the driver; the figure is the',
    'arrival of its result on a core subscription of `pipelines.driver.result` (stored in the same',
    "server pass). The framework drivers' readiness comes from as many cold starts of their own, in",
    `the same rounds: \`/health/ready\` polled every ${READY_POLL_MS} ms from the spawn on (a new connection per`,
    'probe) until the first 200; answering the probes costs the starting driver CPU, so the first-result',
    'figure is taken from the starts without them. *Steady state*, in one more',
    `process per driver after its cold start: a backlog up to ${FIRST_RSS_RUNS} runs, ${SETTLE_MS / 1000} s settle, RSS`,
    `read; ${WARMUP_EVENTS} warm-up events then ${fmtInt(options.samples)} timed ones, one at a time (the clock`,
    'starts right before the publish and stops at the stored result); idle: ' +
      `${SETTLE_MS / 1000} s settle, then ${IDLE_MS / 1000} s in which`,
    'the CPU time is the difference of `utime + stime` in `/proc/<pid>/stat` (all threads; a clock tick',
    `is 10 ms, so the resolution over ${IDLE_MS / 1000} s is 0.1 % of a core) and RSS is \`VmRSS\` of`,
    `\`/proc/<pid>/status\` at its end; wake-ups are the voluntary context switches of all its threads`,
    '(`/proc/<pid>/task/*/status`) over the same window: each is a thread going back to sleep after a',
    `timer or I/O woke it. Then backlogs up to ${fmtInt(MID_RSS_RUNS)} and ${fmtInt(options.leakRuns)} runs (the reference`,
    `driver stops at ${fmtInt(Math.min(options.leakRuns, REFERENCE_LEAK_RUNS))}: it spawns a shell per run), ` +
      `each followed by ${SETTLE_MS / 1000} s settle and an RSS reading`,
    '(no forced GC: RSS is what the kernel reports).',
    'Latency percentiles are nearest-rank.',
    '',
  ];
  const skipped = results.filter((r) => r.skipped);
  for (const r of skipped) out.push(`**Not measured**: the ${r.driver.title}: ${r.skipped}.`, '');
  out.push(
    '### Summary',
    '',
    table([
      [
        'Driver',
        'Cold start: spawn to first result (ms)',
        'Spawn to `/health/ready` 200 (ms)',
        'Warm p50 / p99 (ms)',
        'Idle RSS (MiB)',
        'Idle CPU (% of a core)',
        'Idle wake-ups/s',
        'RSS (MiB) after N runs',
      ],
      ...results.map((r) => {
        const s = r.steady;
        return [
          r.driver.title,
          r.skipped ? 'not measured' : `**${ms(coldMedian(r))}**`,
          r.driver.health && !r.skipped ? ms(readyMedian(r)) : '',
          s ? `${ms2(s.p50Ms)} / ${ms2(s.p99Ms)}` : '',
          s ? mib(s.idleRssMiB) : '',
          s ? s.idleCpuPercent.toFixed(2) : '',
          s ? s.idleWakeupsPerSecond.toFixed(1) : '',
          s?.rss.map((at) => `${mib(at.mib)} (${fmtInt(at.runs)})`).join(', ') ?? '',
        ];
      }),
    ]),
    '',
    '### Against the loop (targets of issue 28)',
    '',
    table([
      ['Measure (of medians)', 'Value', 'Target', 'Verdict'],
      ...checks.map((c) => [c.name, fmtRatio(c.value), c.target, c.verdict]),
    ]),
    '',
    "The reference driver's latency, idle and RSS figures are for orientation: it runs a shell step",
    'per event and ships its log lines, so they have no target against the loop.',
    '',
    '### Cold starts',
    '',
    table([
      ['Driver', 'First result, each cold start (ms)', '`/health/ready` 200, each probed cold start (ms)'],
      ...results
        .filter((r) => !r.skipped)
        .map((r) => [
          r.driver.title,
          r.cold.map((c) => ms(c.resultMs)).join(', '),
          r.driver.health ? r.probed.map((c) => ms(c.readyMs)).join(', ') : '',
        ]),
    ]),
    '',
    '### Where the cold start goes',
    '',
    'The minimal driver stamps the clock after each step of its start-up (`performance.timeOrigin` is',
    "the process start, `performance.nodeTiming.bootstrapComplete` the end of Node's bootstrap, then",
    'one stamp after its imports and one after each awaited call) and reports the stamps before it',
    'starts consuming; the table has the median of each phase over its cold starts (so the medians',
    'need not add up to the median of the whole).',
    '',
    table([['Phase (ends when)', 'Median (ms)', 'Cumulative (ms)'], ...phaseRows(minimal)]),
    '',
    'The same minimal driver built by `conveyor-nestjs bundle` (its imports are one file compiled',
    "from V8's code cache):",
    '',
    table([['Phase (ends when)', 'Median (ms)', 'Cumulative (ms)'], ...phaseRows(minimalBundle)]),
    '',
    'Modules in `require.cache` when it starts consuming, by package:',
    '',
    table([['Package', 'Modules'], ...moduleRows(minimal)]),
    '',
  );
  if (profile) {
    out.push(
      'One more cold start of the minimal driver under `node --cpu-prof` (sampling slows it, so the',
      'times are larger than above; the shares are the point): samples from the process start to the',
      'start of consuming, each counted for the package of the innermost frame that belongs to a file,',
      'so compiling a module counts for the package whose code called `require()`. `(idle)` is the',
      'process waiting (NATS round trips, timers).',
      '',
      table([['Package', 'Sampled (ms)', 'Share'], ...profileRows(profile)]),
      '',
    );
  }
  out.push(
    'The packages issue 28 wants loaded only when their feature is configured, in this driver that',
    'configures none of them (modules loaded; sampled time in the profile above):',
    '',
    table([['Package', 'Modules', 'Sampled (ms)'], ...onDemandRows(minimal, profile)]),
  );
  return { markdown: out.join('\n'), verdicts: checks };
}
