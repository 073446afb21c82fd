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
  /** Last timestamp used, in ns: the next one is strictly greater. */
  lastNs: bigint;
  /** Sequence of the run's lines, for `Nats-Msg-Id` de-duplication. */
  seq: number;
  /** The run's ReconcileContext once created (a handler without `@Ctx()` is found through it). */
  context?: object;
}

/** Entered around the whole dispatch of a message, so an injected DriverLogger finds its run. */
export const runScope = new AsyncLocalStorage<RunBinding>();

export function createRunBinding(
  fields: Omit<
    RunBinding,
    'resultSent' | 'secrets' | 'lastNs' | 'seq' | 'context' | 'maskList' | 'processLog'
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
    lastNs: 0n,
    seq: 0,
  };
}

/**
 * The next timestamp of a run in ns: the wall clock (`Date.now()`, which follows NTP, unlike
 * `performance.timeOrigin + now()`, which drifts over a long uptime) with the sub-millisecond part of
 * the monotonic clock, bumped by 1 ns when not above the previous one. The server replays logs in key order `pipeline|driver|runid|timestamp|uuid`, and
 * Loki drops an entry equal in (timestamp, line) to the previous one: equal stamps would reorder or
 * lose lines.
 */
export function nextTimestampNs(binding: RunBinding): bigint {
  // µs since the epoch stay below 2^53: one BigInt conversion per line.
  const now = BigInt(Date.now() * 1000 + Math.floor((performance.now() * 1000) % 1000)) * 1000n;
  binding.lastNs = now > binding.lastNs ? now : binding.lastNs + 1n;
  return binding.lastNs;
}

/** RFC 3339 in UTC with 9 fraction digits, e.g. `2026-11-23T14:05:06.123456789Z`. */
export function formatRfc3339Nano(ns: bigint): string {
  const second = ns / 1_000_000_000n;
  // Lines come thousands a second: the date part changes once a second.
  if (second !== lastSecond) {
    lastSecond = second;
    lastSecondText = new Date(Number(second) * 1000).toISOString().slice(0, 19);
  }
  return `${lastSecondText}.${(ns - second * 1_000_000_000n).toString().padStart(9, '0')}Z`;
}

let lastSecond = -1n;
let lastSecondText = '';

/** Go runtime's format: unix seconds as a decimal string. */
export function formatUnixSeconds(ns: bigint): string {
  return (ns / 1_000_000_000n).toString();
}
