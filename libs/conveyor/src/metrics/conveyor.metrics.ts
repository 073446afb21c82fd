import { Inject, Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LogShipper } from '../logger/log-shipper';
import { phaseLabel } from '../run-control/run-progress';
import { ConveyorStrategy } from '../transport/conveyor.strategy';
import { CONVEYOR_METRICS_REGISTRY } from './conveyor-metrics.constants';

/**
 * The driver's Prometheus metrics. Labels are bounded (resource type, outcome row, action, sink,
 * drop reason): never a run id, resource name or raw subject, each of which would be a new series.
 * Counters fed by events are incremented as they happen; the rest are read from the live objects
 * when Prometheus scrapes.
 */
@Injectable()
export class ConveyorMetrics {
  constructor(
    @Inject(CONVEYOR_METRICS_REGISTRY) registry: Registry,
    strategy: ConveyorStrategy,
    logs: LogShipper,
  ) {
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
      'Handler runs finished, by resource type and settlement outcome',
      ['resource', 'outcome'],
    );
    const duration = new Histogram({
      name: 'conveyor_run_duration_seconds',
      help: 'Handler run duration, from start to final verb',
      labelNames: ['resource', 'outcome'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers,
    });
    const settled = counter(
      'conveyor_messages_settled_total',
      'Messages settled, by outcome row and verb (ack, nak, term): naks, terminations, dead letters',
      ['outcome', 'action'],
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
      labelNames: ['sink', 'outcome', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const [sink, stats] of Object.entries(logs.stats.sinks)) {
          this.inc({ sink, outcome: 'sent', reason: '' }, stats.sent);
          for (const [reason, n] of Object.entries(stats.dropped))
            this.inc({ sink, outcome: 'dropped', reason }, n);
        }
      },
    });
    const cleanupFailures = counter(
      'conveyor_cleanup_failures_total',
      'ctx.onCleanup() hooks that threw or did not finish within their deadline',
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
        finished.inc({ resource: resourceType, outcome });
        duration.observe({ resource: resourceType, outcome }, durationMs / 1000);
      },
      messageSettled: ({ outcome, action }) => settled.inc({ outcome, action }),
      resultPublishRetried: () => publishRetries.inc(),
      resultPublishFailed: ({ errorClass }) => publishErrors.inc({ class: errorClass }),
      sessionRestarted: () => sessionRestarts.inc(),
      reconnected: () => reconnects.inc(),
      cleanupFailed: () => cleanupFailures.inc(),
      runPhaseChanged: ({ from, to }) => {
        if (from !== undefined) inPhase.dec({ phase: phaseLabel(from) });
        if (to !== undefined) inPhase.inc({ phase: phaseLabel(to) });
      },
    });
  }
}
