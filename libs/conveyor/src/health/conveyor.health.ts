import { Inject, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import { runtimeSingleton } from '../module/runtime-lookup';
import { lokiAuthHeaders } from '../logger/sinks/loki-auth';
import { fetchWithin } from '../logger/sinks/fetch-within';
import { ConveyorStrategy } from '../transport/conveyor.strategy';
import { abortable } from '../util/abortable';
import { CONVEYOR_HEALTH_OPTIONS } from './conveyor-health.constants';
import { ConveyorHealthOptions, HEALTH_DEFAULTS } from './conveyor-health.options';

/** How often the event loop's delay is sampled (see `loop`). */
const LOOP_SAMPLE_MS = 500;

/** `work`'s value, or an error naming `what` when it takes longer than `ms`. */
async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  const done = await abortable(work, undefined, ms);
  if (done.ended === 'done') return done.value;
  throw new Error(`${what} timed out after ${ms} ms`);
}

/**
 * Health indicators on the transport's live objects: never a new connection per probe. Loki is
 * reported but never fails readiness: a driver keeps consuming while its log store is down.
 * Internal: the module's controller and {@link ConveyorHealthIndicator} use it.
 */
@Injectable()
export class ConveyorHealthIndicators implements OnModuleInit, OnModuleDestroy {
  /**
   * Sampled twice a second: liveness fails on delays of seconds (`maxEventLoopDelayMs`, 5 s), and a
   * blocked loop shows in one late sample as well as in fifty. At 20 ms the sampler alone woke an
   * idle driver 50 times a second (the footprint bench's wake-ups).
   */
  private readonly loop = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
  private readonly limits: Required<ConveyorHealthOptions>;
  private runtime?: { strategy: ConveyorStrategy; config: ConveyorConfig };

  constructor(
    private readonly indicator: HealthIndicatorService,
    private readonly moduleRef: ModuleRef,
    @Inject(CONVEYOR_HEALTH_OPTIONS) options: ConveyorHealthOptions,
  ) {
    this.limits = { ...HEALTH_DEFAULTS, ...options };
  }

  /** Finds the runtime at startup, so a missing `ConveyorModule` stops the app instead of a probe. */
  onModuleInit(): void {
    if (this.runtime) return;
    this.runtime = {
      strategy: runtimeSingleton(this.moduleRef, ConveyorStrategy, 'ConveyorHealthModule'),
      config: runtimeSingleton<ConveyorConfig>(this.moduleRef, CONVEYOR_CONFIG, 'ConveyorHealthModule'),
    };
    // Sampling starts with a runtime to watch: an app that failed to start leaves nothing enabled.
    this.loop.enable();
  }

  onModuleDestroy(): void {
    this.loop.disable();
  }

  // Probes may come before onModuleInit only in a test that builds the class by hand.
  private get strategy(): ConveyorStrategy {
    this.onModuleInit();
    return this.runtime!.strategy;
  }

  private get config(): ConveyorConfig {
    this.onModuleInit();
    return this.runtime!.config;
  }

  /** The process answers and its event loop is not stuck. */
  eventLoop(key = 'event_loop'): HealthIndicatorResult {
    const session = this.indicator.check(key);
    // The histogram holds whole intervals between samples: the delay is what exceeds the period.
    const p99Ms = Math.max(0, Math.round(this.loop.percentile(99) / 1e6) - LOOP_SAMPLE_MS);
    this.loop.reset();
    return p99Ms > this.limits.maxEventLoopDelayMs ? session.down({ p99Ms }) : session.up({ p99Ms });
  }

  /** Connected to NATS, with the round trip measured on the live connection. */
  async nats(): Promise<HealthIndicatorResult> {
    const session = this.indicator.check('nats');
    // The server as the link reports it: without credentials, with the last connection failure.
    const { server, connected, lastError } = this.strategy.natsStatus;
    let nc: NatsConnection | undefined;
    try {
      nc = this.strategy.unwrap<NatsConnection>();
    } catch {
      nc = undefined;
    }
    if (!nc || nc.isClosed() || !connected) {
      const message = lastError ?? (nc ? 'disconnected, reconnecting' : 'not connected yet');
      return session.down({ server, message });
    }
    try {
      const rttMs = await withTimeout(nc.rtt(), this.limits.probeTimeoutMs, 'NATS rtt');
      return session.up({ server, rttMs });
    } catch (err) {
      return session.down({ server, message: this.config.redactor.redact((err as Error).message) });
    }
  }

  /** The durable consumer is bound and pulled (false while binding, recovering, disconnected or draining). */
  consumer(): HealthIndicatorResult {
    const session = this.indicator.check('consumer');
    const { ready, reason, stuck } = this.strategy.readiness;
    const details = { name: this.config.driverName, state: this.strategy.state, ...(stuck ? { stuck } : {}) };
    return ready ? session.up(details) : session.down({ ...details, reason });
  }

  /** Loki's `/ready`, when the Loki sink is configured. Reported, never fatal. */
  async loki(): Promise<HealthIndicatorResult | undefined> {
    if (!this.config.loki) return undefined;
    const session = this.indicator.check('loki');
    try {
      const response = await fetchWithin(
        `${this.config.loki.url}/ready`,
        { headers: lokiAuthHeaders(this.config.loki) },
        this.limits.probeTimeoutMs,
      );
      return response.ok ? session.up() : session.down({ message: `GET /ready -> ${response.status}` });
    } catch (err) {
      return session.down({ message: this.config.redactor.redact((err as Error).message) });
    }
  }
}

/**
 * The driver's health for an app's own Terminus controller, exported by `ConveyorHealthModule`:
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * check() {
 *   return this.health.check([() => this.conveyor.isHealthy('conveyor'), () => this.db.pingCheck('db')]);
 * }
 * ```
 */
@Injectable()
export class ConveyorHealthIndicator {
  /** @internal Nest makes it: inject it, never construct it. */
  constructor(
    private readonly indicators: ConveyorHealthIndicators,
    private readonly indicator: HealthIndicatorService,
  ) {}

  /**
   * Ready to take work: NATS connected (round trip measured) and the durable consumer bound and
   * pulling; down while connecting, during a NATS outage and from the first moment of shutdown.
   * The details name the server, the consumer's state and, when down, why. Loki is not part of it:
   * a driver keeps consuming while its log store is down.
   *
   * @param key - the key of the result in the health check's body, default `conveyor`
   */
  async isHealthy(key = 'conveyor'): Promise<HealthIndicatorResult> {
    const [nats, consumer] = await Promise.all([this.indicators.nats(), this.indicators.consumer()]);
    const details = { ...nats, ...consumer };
    const up = Object.values(details).every((d) => d.status === 'up');
    const session = this.indicator.check(key);
    return up ? session.up(details) : session.down(details);
  }

  /**
   * Alive: the event loop is not stuck (p99 delay under `maxEventLoopDelayMs`). Stays up during a
   * drain, so a liveness probe built on it never kills a driver finishing its runs; do not put
   * {@link ConveyorHealthIndicator.isHealthy} in a liveness probe.
   *
   * @param key - the key of the result in the health check's body, default `event_loop`
   */
  isAlive(key = 'event_loop'): HealthIndicatorResult {
    return this.indicators.eventLoop(key);
  }
}
