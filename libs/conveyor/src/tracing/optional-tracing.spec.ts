import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { RunSpan, RunSpanStart, inRunSpan } from './optional-tracing';

const start = jest.fn((): RunSpanStart => ({
  name: 'reconcile widget',
  attributes: { 'conveyor.run_id': 'r1' },
}));

describe('inRunSpan', () => {
  beforeEach(() => start.mockClear());

  it('without an SDK builds no span start and gives the run the no-op span', async () => {
    const traced = await inRunSpan(start, async (span: RunSpan) => span.traced);
    expect(traced).toBe(false);
    expect(start).not.toHaveBeenCalled();
  });

  it('without an SDK but inside a valid span still starts one (its ids reach the log lines)', async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    try {
      const parent = trace.wrapSpanContext({
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        traceFlags: 1,
      });
      const traced = await context.with(trace.setSpan(context.active(), parent), () =>
        inRunSpan(start, async (span) => span.traced),
      );
      expect(traced).toBe(true);
      expect(start).toHaveBeenCalledTimes(1);
    } finally {
      context.disable();
    }
  });

  it('with an SDK starts the span with the name and attributes built then', async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    try {
      const traced = await inRunSpan(start, async (span) => {
        span.setAttribute('conveyor.outcome', 'succeeded');
        span.end();
        return span.traced;
      });
      expect(traced).toBe(true);
      expect(start).toHaveBeenCalledTimes(1);
      const [span] = exporter.getFinishedSpans();
      expect(span.name).toBe('reconcile widget');
      expect(span.attributes).toEqual({ 'conveyor.run_id': 'r1', 'conveyor.outcome': 'succeeded' });
    } finally {
      trace.disable();
    }
  });
});
