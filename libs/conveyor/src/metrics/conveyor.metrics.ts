import { Inject, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LogShipper } from '../logger/log-shipper';
import { runtimeSingleton } from '../module/runtime-lookup';
import { phaseLabel } from '../run-control/run-progress';
import { ConveyorStrategy } from '../transport/conveyor.strategy';
import { CONVEYOR_METRICS_OPTIONS, CONVEYOR_METRICS_REGISTRY } from './conveyor-metrics.constants';
import type { ConveyorMetricsOptions } from './conveyor-metrics.options';

/** One of prom-client's default metrics: present means someone already collects them into the registry. */
const DEFAULT_METRIC_PROBE = 'process_cpu_user_seconds_total';

/**
 * The driver's Prometheus metrics. Labels are bounded (resource type, result, action, sink, drop
 * reason): never a run id, resource name or raw subject, each of which would be a new series.
 * Counters fed by events are incremented as they happen; the rest are read from the live objects
 * when Prometheus scrapes. Created at `onModuleInit`, when the runtime (found wherever
 * `ConveyorModule` is imported) exists, and taken out of the registry when the app closes, so an
 * app started again in the same process registers them anew instead of crashing on a duplicate.
 */
@Injectable()
export class ConveyorMetrics implements OnModuleInit, OnModuleDestroy {
  private readonly added: string[] = [];

  constructor(
    @Inject(CONVEYOR_METRICS_REGISTRY) private readonly registry: Registry,
    @Inject(CONVEYOR_METRICS_OPTIONS) private readonly options: ConveyorMetricsOptions,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    const strategy = runtimeSingleton(this.moduleRef, ConveyorStrategy, 'ConveyorMetricsModule');
    const logs = runtimeSingleton(this.moduleRef, LogShipper, 'ConveyorMetricsModule');
    const before = new Set(this.registry.getMetricsAsArray().map((m) => m.name));
    // Never twice: prom-client throws on a second registration of the same name, which is how an
    // app with its own PrometheusModule.register() used to crash.
    if ((this.options.defaultMetrics ?? true) && !this.registry.getSingleMetric(DEFAULT_METRIC_PROBE)) {
      // prom-client's event-loop lag monitor samples every 10 ms by default: 100 wake-ups a second
      // of an idle driver, for a gauge scraped every 15 s or so.
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 500 });
    }
    this.define(this.registry, strategy, logs);
    for (const metric of this.registry.getMetricsAsArray()) {
      if (!before.has(metric.name)) this.added.push(metric.name);
    }
  }

  onModuleDestroy(): void {
    for (const name of this.added.splice(0)) this.registry.removeSingleMetric(name);
  }

  private define(registry: Registry, strategy: ConveyorStrategy, logs: LogShipper): void {
    const registers = [registry];
    const counter = (name: string, help: string, labelNames: string[] = []) =>
      new Counter({ name, help, labelNames, registers });
    const started = counter('conveyor_runs_started_total', 'Handler runs started, by resource type', [
      'resource',
    ]);
    const redeliveries = counter(
      'conveyor_redeliveries_total',
      'Runs started for a message delivered more than once',
      ['resource'],
    );
    const finished = counter(
      'conveyor_runs_finished_total',
      'Handler runs finished, by resource type and result (how the message was settled)',
      ['resource', 'result'],
    );
    const duration = new Histogram({
      name: 'conveyor_run_duration_seconds',
      help: 'Handler run duration, from start to final verb',
      labelNames: ['resource', 'result'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers,
    });
    const settled = counter(
      'conveyor_messages_settled_total',
      'Messages settled, by result and verb (ack, nak, term): naks, terminations, dead letters',
      ['result', 'action'],
    );
    const publishRetries = counter(
      'conveyor_result_publish_retries_total',
      'Result publishes retried after a failure',
    );
    const reconnects = counter('conveyor_nats_reconnects_total', 'Reconnections to NATS');
    const publishErrors = counter(
      'conveyor_result_publish_errors_total',
      'Result publishes that failed, by class: transient (retried) or why they can never be stored',
      ['class'],
    );
    const sessionRestarts = counter(
      'conveyor_consumer_session_restarts_total',
      'Consumer session restarts after a failure escaped it',
    );
    new Gauge({
      name: 'conveyor_consumer_pulling',
      help: '1 while the consumer session is bound and pulling, else 0',
      registers,
      collect() {
        this.set(strategy.isReady ? 1 : 0);
      },
    });
    new Gauge({
      name: 'conveyor_unrouted_messages_held',
      help: "Messages no handler here serves, nak'd and expected back (dead-lettered after unroutedDeadLetterMs)",
      registers,
      collect() {
        this.set(strategy.stats.unroutedHeld);
      },
    });
    new Gauge({
      name: 'conveyor_runs_in_flight',
      help: 'Messages between pull and final verb',
      registers,
      collect() {
        this.set(strategy.stats.inFlight);
      },
    });
    new Gauge({
      name: 'conveyor_runs_overdue',
      help: 'Runs past their timeout whose handler still holds its slot',
      registers,
      collect() {
        this.set(strategy.stats.overdue);
      },
    });
    new Gauge({
      name: 'conveyor_consumer_pending',
      help: 'Messages waiting on the durable consumer (sampled every few seconds)',
      labelNames: ['kind'],
      registers,
      collect() {
        const info = strategy.consumerInfo;
        if (!info) return;
        this.set({ kind: 'pending' }, info.num_pending);
        this.set({ kind: 'ack_pending' }, info.num_ack_pending);
      },
    });
    // Cumulative counts kept by the logger, exposed as counters: reset to the current totals at scrape.
    new Counter({
      name: 'conveyor_log_lines_total',
      help: 'Run log lines: shipped, late (logged after the result), split',
      labelNames: ['kind'],
      registers,
      collect() {
        const stats = logs.stats;
        this.reset();
        this.inc({ kind: 'shipped' }, stats.lines);
        this.inc({ kind: 'late' }, stats.late);
        this.inc({ kind: 'split' }, stats.split);
      },
    });
    new Counter({
      name: 'conveyor_log_sink_lines_total',
      help: 'Run log lines per sink: sent, or dropped by reason',
      labelNames: ['sink', 'result', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const [sink, stats] of Object.entries(logs.stats.sinks)) {
          this.inc({ sink, result: 'sent', reason: '' }, stats.sent);
          for (const [reason, n] of Object.entries(stats.dropped))
            this.inc({ sink, result: 'dropped', reason }, n);
        }
      },
    });
    const cleanupFailures = counter(
      'conveyor_cleanup_failures_total',
      'ctx.onCleanup() hooks that threw or did not finish within their deadline',
    );
    const specRejections = counter(
      'conveyor_spec_rejections_total',
      "Payloads whose spec failed their handler's generated validator (@Reconcile({ spec })), by JSON Schema rule",
      ['resource', 'rule'],
    );
    const inPhase = new Gauge({
      name: 'conveyor_runs_in_phase',
      help: 'Runs in flight by the phase of their last ctx.progress() report (at most 32 phases, then "other")',
      labelNames: ['phase'],
      registers,
    });
    strategy.observe({
      runStarted: ({ resourceType, deliveryCount }) => {
        started.inc({ resource: resourceType });
        if (deliveryCount > 1) redeliveries.inc({ resource: resourceType });
      },
      runFinished: ({ resourceType, outcome, durationMs }) => {
        finished.inc({ resource: resourceType, result: outcome });
        duration.observe({ resource: resourceType, result: outcome }, durationMs / 1000);
      },
      messageSettled: ({ outcome, action }) => settled.inc({ result: outcome, action }),
      resultPublishRetried: () => publishRetries.inc(),
      resultPublishFailed: ({ errorClass }) => publishErrors.inc({ class: errorClass }),
      sessionRestarted: () => sessionRestarts.inc(),
      reconnected: () => reconnects.inc(),
      cleanupFailed: () => cleanupFailures.inc(),
      specRejected: ({ resourceType, rule }) => specRejections.inc({ resource: resourceType, rule }),
      runPhaseChanged: ({ from, to }) => {
        if (from !== undefined) inPhase.dec({ phase: phaseLabel(from) });
        if (to !== undefined) inPhase.inc({ phase: phaseLabel(to) });
      },
    });
  }
}
