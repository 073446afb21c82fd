import type * as OtelApi from '@opentelemetry/api';
import { optionalPeer } from '../module/optional-peer';

/** What a run does with its span: the part of OpenTelemetry's `Span` the runtime uses. */
export interface RunSpan {
  /**
   * The span is a real one (an SDK is registered): the run's log lines then carry the ids of the
   * span active where they are logged. Without it no span of the run can be valid, and a line
   * skips the lookup (three calls into OpenTelemetry's API per line, by the hundred thousand).
   */
  readonly traced: boolean;
  setAttribute(key: string, value: string | number): void;
  /** Marks the span failed with a short, bounded description (the settlement kind). */
  fail(description: string): void;
  end(): void;
}

const noSpan: RunSpan = {
  traced: false,
  setAttribute: () => undefined,
  fail: () => undefined,
  end: () => undefined,
};

/**
 * Where `@opentelemetry/api` (1.x) keeps what an app registers (a tracer provider, a context
 * manager…), on the global object, whichever copy of the API (CommonJS, ESM, bundled) registered it.
 */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1');

/**
 * `@opentelemetry/api` when the app has it installed (an optional peer) and has registered something
 * with it. Until then every span would be a no-op one with no valid ids (no provider to record it,
 * no context manager to make a parent active), so the API is not loaded for nothing: a driver
 * without tracing never loads it. Asked on each call (one property read) until the app registers.
 */
function otel(): typeof OtelApi | undefined {
  if ((globalThis as Record<symbol, unknown>)[OTEL_GLOBAL] === undefined) return undefined;
  return optionalPeer<typeof OtelApi>('@opentelemetry/api');
}

/** The name and attributes of a run's span. */
export interface RunSpanStart {
  name: string;
  attributes: Record<string, string | number>;
}

const TRACER_NAME = '@conveyor-ci/nestjs';

/**
 * Runs `fn` inside an active CONSUMER span that `start` names (a no-op span without OpenTelemetry,
 * or without an SDK registered: the API's own tracer is then a no-op too). `start` is called only
 * when a span can record something, so a run without tracing builds no name, attributes or span.
 */
export function inRunSpan<T>(start: () => RunSpanStart, fn: (span: RunSpan) => Promise<T>): Promise<T> {
  const o = otel();
  const tracer = o ? tracerOf(o) : undefined;
  if (!o || !tracer) return fn(noSpan);
  const { name, attributes } = start();
  return tracer.startActiveSpan(name, { kind: o.SpanKind.CONSUMER, attributes }, (span) =>
    fn({
      traced: o.isSpanContextValid(span.spanContext()),
      setAttribute: (key, value) => void span.setAttribute(key, value),
      fail: (description) => void span.setStatus({ code: o.SpanStatusCode.ERROR, message: description }),
      end: () => span.end(),
    }),
  );
}

/**
 * The tracer to start a run's span with, or undefined when that span would be a no-op one with no
 * valid ids: no SDK registered (the API's global provider is still its own proxy, with no delegate)
 * and no span active to be its parent. A provider that is not the API's own proxy (another copy of
 * the API registered it) is always used.
 */
function tracerOf(o: typeof OtelApi): OtelApi.Tracer | undefined {
  const provider = o.trace.getTracerProvider();
  if (!(provider instanceof o.ProxyTracerProvider)) return provider.getTracer(TRACER_NAME);
  return (
    provider.getDelegateTracer(TRACER_NAME) ??
    (o.trace.getActiveSpan() ? provider.getTracer(TRACER_NAME) : undefined)
  );
}

/** The active span's ids, for log lines. */
export interface TraceIds {
  traceId?: string;
  spanId?: string;
}

/** No trace: a line logged outside any valid span. */
export const NO_TRACE_IDS: TraceIds = Object.freeze({});

/** The active span's trace and span ids, for log lines (none outside a valid span). */
export function activeTraceIds(): TraceIds {
  const o = otel();
  const span = o?.trace.getActiveSpan()?.spanContext();
  return span && o!.isSpanContextValid(span) ? { traceId: span.traceId, spanId: span.spanId } : NO_TRACE_IDS;
}

/**
 * Loads `@opentelemetry/api` now if the app has registered something with it (at startup, not inside
 * the first run's first log call).
 */
export function loadTracing(): void {
  otel();
}
