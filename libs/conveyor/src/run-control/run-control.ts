import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import type { RunProgress } from '../protocol';
import { progressReports, publishCancel } from './run-control.nats';
import { ConveyorStrategy } from '../transport/conveyor.strategy';
import { NatsLink, NatsLinkStatus } from '../transport/nats-link';
import { abortable } from '../util/abortable';

/** How long a call waits for a NATS connection (an own dial may finish one handshake past it). */
const CONNECT_WAIT_MS = 5_000;
/** How long a cancel waits for the broker: the KV bucket and the put are JetStream requests. */
const PUBLISH_WAIT_MS = 10_000;
/** How long shutdown lets the own connection flush before closing it. */
const DRAIN_WAIT_MS = 5_000;

/** {@link RunControl} could not reach NATS in time (down, unreachable, refusing us, or shutting down). */
export class NatsUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NatsUnavailableError';
  }
}

/**
 * Run control: cancel a run from any process, watch a run's progress. Inject it anywhere in an app
 * that imports `ConveyorModule`, with or without `@Reconcile` handlers: it uses the transport's NATS
 * connection when the transport dials one, else its own, dialed on first use with the module's
 * servers, credentials and TLS, and closed at application shutdown.
 */
@Injectable()
export class RunControl implements OnApplicationShutdown {
  private readonly log = new Logger('RunControl');
  private readonly link: NatsLink;
  private readonly stopping = new AbortController();
  /** The own connection, once dialing began; only when the transport has none to lend. */
  private own?: Promise<NatsConnection>;

  constructor(
    @Inject(ConveyorStrategy) private readonly strategy: ConveyorStrategy,
    @Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig,
  ) {
    this.link = new NatsLink(config, this.log);
  }

  /**
   * Cancels run `runId` with `reason`: the replica running it aborts `ctx.signal` (a
   * `RunCancelledError`) and publishes the failure result `cancelled: <reason>`; a step of the run
   * that starts later (within `cancelTtlMs`) is cancelled as it starts. Resolves once published.
   * @returns whether the cancel is also remembered for runs not started yet (needs JetStream KV).
   * @throws {NatsUnavailableError} when NATS does not connect or take the cancel within seconds.
   */
  async cancel(runId: string, reason = 'cancelled by request'): Promise<{ remembered: boolean }> {
    const nc = (await this.connection())!;
    const published = await abortable(
      publishCancel(nc, runId, reason, this.config.cancelTtlMs),
      undefined,
      PUBLISH_WAIT_MS,
    );
    if (published.ended === 'done') return published.value;
    throw new NatsUnavailableError(
      `NATS ${this.config.redactor.redact(nc.getServer())} did not take the cancel of run ${runId} within ${PUBLISH_WAIT_MS} ms`,
    );
  }

  /**
   * The progress reports of run `runId` as they are published (throttled at the source), until
   * `signal` aborts or the app shuts down.
   * @throws {NatsUnavailableError} when NATS does not connect within seconds.
   */
  async *watchProgress(runId: string, signal?: AbortSignal): AsyncGenerator<RunProgress> {
    const nc = await this.connection(signal);
    if (nc) yield* progressReports(nc, runId, signal);
  }

  /** Drains the own connection, if one was dialed; the transport closes its own. */
  async onApplicationShutdown(): Promise<void> {
    this.stopping.abort();
    const nc = await this.own?.catch(() => undefined);
    if (!nc || nc.isClosed()) return;
    // drain() cannot flush while disconnected and would leave the reconnect loop running.
    const drained = this.link.status.connected
      ? await abortable(() => nc.drain(), undefined, DRAIN_WAIT_MS).catch(() => undefined)
      : undefined;
    if (drained?.ended !== 'done') await nc.close().catch(() => undefined);
  }

  /**
   * The connection to use now (`undefined` when `signal` aborted first). The transport redials, so
   * its current connection is taken at every call; waiting for it to be connected is enough, a
   * cancel needs no consumer.
   */
  private async connection(signal?: AbortSignal): Promise<NatsConnection | undefined> {
    if (this.stopping.signal.aborted)
      throw new NatsUnavailableError('no NATS connection: the app is shutting down');
    if (this.strategy.dials) {
      const connected = await abortable(this.strategy.whenConnected(), signal, CONNECT_WAIT_MS);
      if (connected.ended === 'timed-out') throw this.unavailable(this.strategy.natsStatus);
      return connected.ended === 'done' ? this.strategy.unwrap() : undefined;
    }
    // The own dial is bounded by itself: shared by concurrent callers, it must not end with one of them.
    const own = await abortable((this.own ??= this.dial()), signal, 0);
    return own.ended === 'done' ? own.value : undefined;
  }

  private dial(): Promise<NatsConnection> {
    const dialing = (async () => {
      const nc = await this.link.connect(
        AbortSignal.any([this.stopping.signal, AbortSignal.timeout(CONNECT_WAIT_MS)]),
      );
      if (!nc) throw this.unavailable(this.link.status);
      // Keeps link.status true to the connection (shutdown drains only a connected one) and logs outages.
      void this.link.watch(nc, { disconnect: () => {}, reconnect: () => {}, error: () => {} });
      return nc;
    })();
    // A failed dial is forgotten, so the next call dials again; a connection made is kept until shutdown.
    dialing.catch(() => {
      if (this.own === dialing) this.own = undefined;
    });
    return dialing;
  }

  private unavailable(status: NatsLinkStatus): NatsUnavailableError {
    return new NatsUnavailableError(
      `no connection to NATS ${status.server} within ${CONNECT_WAIT_MS} ms: ${status.lastError ?? 'no answer'}`,
    );
  }
}
