import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import { lokiAuthHeaders } from '../logger/sinks/loki.sink';
import { fetchWithin } from '../logger/sinks/fetch-within';
import { ConveyorStrategy } from '../transport/conveyor.strategy';
import { abortable } from '../util/abortable';

/** A probe must answer quickly even when NATS or Loki hang. */
const PROBE_TIMEOUT_MS = 2000;
/** The event loop is considered stuck above this p99 delay (a run doing sync work for seconds). */
const MAX_EVENT_LOOP_DELAY_MS = 5000;

/** `work`'s value, or an error naming `what` when it takes longer than `ms`. */
async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  const done = await abortable(work, undefined, ms);
  if (done.ended === 'done') return done.value;
  throw new Error(`${what} timed out after ${ms} ms`);
}

/**
 * Health indicators on the transport's live objects: never a new connection per probe. Loki is
 * reported but never fails readiness: a driver keeps consuming while its log store is down.
 */
@Injectable()
export class ConveyorHealthIndicators implements OnModuleDestroy {
  private readonly loop = monitorEventLoopDelay({ resolution: 20 });

  constructor(
    private readonly indicator: HealthIndicatorService,
    private readonly strategy: ConveyorStrategy,
    @Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig,
  ) {
    this.loop.enable();
  }

  onModuleDestroy(): void {
    this.loop.disable();
  }

  /** The process answers and its event loop is not stuck. */
  eventLoop(): HealthIndicatorResult {
    const session = this.indicator.check('event_loop');
    const p99Ms = Math.round(this.loop.percentile(99) / 1e6);
    this.loop.reset();
    return p99Ms > MAX_EVENT_LOOP_DELAY_MS ? session.down({ p99Ms }) : session.up({ p99Ms });
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
      const rttMs = await withTimeout(nc.rtt(), PROBE_TIMEOUT_MS, 'NATS rtt');
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
        PROBE_TIMEOUT_MS,
      );
      return response.ok ? session.up() : session.down({ message: `GET /ready -> ${response.status}` });
    } catch (err) {
      return session.down({ message: this.config.redactor.redact((err as Error).message) });
    }
  }
}
