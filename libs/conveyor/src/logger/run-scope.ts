import { AsyncLocalStorage } from 'node:async_hooks';

/** The run a log line belongs to, and the per-run state its lines need. */
export interface RunBinding {
  runId: string;
  driver: string;
  /** The resource's `pipeline` ('' for a direct resource event, as Go leaves it). */
  pipeline: string;
  event: string;
  messageId: string;
  /** Delivery count of the message this run came from (1 on the first). */
  delivery: number;
  resource: string;
  resourceType: string;
  /** Set once the run's result is published: later lines still ship, counted as late. */
  resultSent: boolean;
  /** Values masked in every line of this run (`logger.mask(...)`). */
  secrets: Set<string>;
  /** `secrets`, longest first (sorted once per `mask()` call, not per line). */
  maskList?: string[];
  /** The run's process-log writer, made on its first line. */
  processLog?: unknown;
  /**
   * The stamp of the run's last line: µs since the epoch (exact in a double) and ns within that µs
   * (see advanceClock). Two numbers, not a BigInt: this runs per line.
   */
  clockUs: number;
  clockSubNs: number;
  /** Sequence of the run's lines, for `Nats-Msg-Id` de-duplication. */
  seq: number;
  /** The run's span is a real one (see RunSpan.traced): its lines look up their trace ids. */
  traced: boolean;
  /** The run's ReconcileContext once created (a handler without `@Ctx()` is found through it). */
  context?: object;
}

/** Entered around the whole dispatch of a message, so an injected DriverLogger finds its run. */
export const runScope = new AsyncLocalStorage<RunBinding>();

export function createRunBinding(
  fields: Omit<
    RunBinding,
    | 'resultSent'
    | 'secrets'
    | 'clockUs'
    | 'clockSubNs'
    | 'seq'
    | 'traced'
    | 'context'
    | 'maskList'
    | 'processLog'
  >,
): RunBinding {
  // Written out rather than spread: one object shape per message on the hot path.
  return {
    runId: fields.runId,
    driver: fields.driver,
    pipeline: fields.pipeline,
    event: fields.event,
    messageId: fields.messageId,
    delivery: fields.delivery,
    resource: fields.resource,
    resourceType: fields.resourceType,
    resultSent: false,
    secrets: new Set(),
    // NaN (no stamp yet), not 0: the field is a double from the start, so the first stamp does not
    // change the binding's shape under the code that reads it.
    clockUs: Number.NaN,
    clockSubNs: 0,
    seq: 0,
    traced: false,
  };
}

/**
 * Now in µs since the epoch: the monotonic clock, anchored to the wall clock (`Date.now()`, which
 * follows NTP, unlike `performance.timeOrigin + now()`, which drifts over a long uptime) at the
 * first call (the first after a quiet second) and again every ANCHOR_MS by a timer while lines
 * are stamped. Sub-millisecond precision matters: Loki keeps
 * one of two entries equal in (timestamp, line) within a stream, and a stream holds every run of a
 * driver (`driver`, `event`, `level`): two runs printing the same line within one millisecond would
 * lose one of them. One clock read per line (lines come by the hundred thousand), and no branch
 * that only every 100th millisecond takes: V8's optimised code meets such a branch without type
 * feedback and throws away the compiled logging path around it (advanceClock keeps lines in order
 * when an anchoring moves the clock back).
 */
export function nowUs(): number {
  const monoUs = Math.floor(performance.now() * 1000);
  if (!wall.anchoring) startAnchoring(monoUs);
  // A store, not a branch: tells the timer the clock is in use.
  wall.read = true;
  return wall.offsetUs + monoUs;
}

const ANCHOR_MS = 1000;
/**
 * NaN, not 0: the field holds a double from the start (a small integer first would change its
 * shape). `read`: the clock was read since the last anchoring.
 */
const wall = {
  offsetUs: Number.NaN,
  anchoring: false,
  read: false,
  timer: undefined as NodeJS.Timeout | undefined,
};

function anchor(monoUs = Math.floor(performance.now() * 1000)): void {
  wall.offsetUs = Date.now() * 1000 - monoUs;
}

/**
 * Anchors again every ANCHOR_MS while lines are stamped. A second without a line stops the timer
 * (an idle driver is not woken for a clock nobody reads); the next line anchors at once and starts
 * it again.
 */
function reanchor(): void {
  if (!wall.read) {
    clearInterval(wall.timer);
    wall.timer = undefined;
    wall.anchoring = false;
    return;
  }
  wall.read = false;
  anchor();
}

function startAnchoring(monoUs: number): void {
  wall.anchoring = true;
  anchor(monoUs);
  wall.timer = setInterval(reanchor, ANCHOR_MS);
  wall.timer.unref();
}

/** The last stamp given to any line of this process (`us` a double from the start, as in `wall`). */
const processClock = { us: Number.NEGATIVE_INFINITY, subNs: 0 };

/**
 * Stamps the next line of `binding`'s run, logged at `atUs`: strictly after every line this process
 * stamped before (bumped by 1 ns when not), so a run's lines are in order (the server replays logs
 * in key order `pipeline|driver|runid|timestamp|uuid`) and no two lines of the process share a
 * stamp (Loki would drop one of two equal lines at one stamp). The stamp is left in the binding.
 * Arithmetic rather than branches: the bump is rare (two lines within one µs), and a branch first
 * taken deep into a flood would deoptimise every caller it was inlined into.
 */
export function advanceClock(binding: RunBinding, atUs = nowUs()): void {
  const clock = processClock;
  const stays = Number(atUs <= clock.us);
  // 1 ns on when the clock did not move past the last stamp, else 0; 1000 ns carry into the µs.
  const subNs = (clock.subNs + 1) * stays;
  // A comparison, not `Math.floor(subNs / 1000)`: V8 speculates that 0 / 1000 stays a whole number.
  const carry = Number(subNs >= 1000);
  clock.us = Math.max(atUs, clock.us) + carry;
  clock.subNs = subNs - carry * 1000;
  binding.clockUs = clock.us;
  binding.clockSubNs = clock.subNs;
}

/** RFC 3339 in UTC with 9 fraction digits, e.g. `2026-11-23T14:05:06.123456789Z`. */
export function formatRfc3339Nano(us: number, subNs: number): string {
  const second = Math.floor(us / 1_000_000);
  const fraction = String(nanosWithinSecond(us, subNs, second)).padStart(STAMP_FRACTION_DIGITS, '0');
  return `${secondStamp(second, 'rfc3339')}${fraction}Z`;
}

/** Digits after the second in an RFC 3339 stamp (before its `Z`). */
export const STAMP_FRACTION_DIGITS = 9;

/**
 * The part of a line's stamp that stays the same for a whole second: `YYYY-MM-DDTHH:MM:SS.` of
 * an RFC 3339 stamp, or the unix seconds (Go's format, the whole stamp). Lines come by the
 * thousand a second: writers encode it once a second and only the fraction per line.
 */
export function secondStamp(second: number, format: 'rfc3339' | 'unix'): string {
  return format === 'unix' ? String(second) : `${new Date(second * 1000).toISOString().slice(0, 19)}.`;
}

/** Nanoseconds of a stamp within its `second` (below 10^9): the RFC 3339 fraction. */
export function nanosWithinSecond(us: number, subNs: number, second: number): number {
  return (us - second * 1_000_000) * 1000 + subNs;
}

/** Go runtime's format: unix seconds as a decimal string. */
export function formatUnixSeconds(us: number): string {
  return String(Math.floor(us / 1_000_000));
}

/** Nanoseconds since the epoch as a decimal string (Loki's timestamps). */
export function formatUnixNanos(us: number, subNs: number): string {
  return `${us}${String(subNs).padStart(3, '0')}`;
}
