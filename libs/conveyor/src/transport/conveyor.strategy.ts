import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationShutdown,
  OnModuleDestroy,
} from '@nestjs/common';
import { CustomTransportStrategy, MessageHandler, Server } from '@nestjs/microservices';
import type { ConsumerInfo, NatsConnection } from 'nats';
import { ConveyorClient } from '../client/conveyor.client';
import { LogShipper } from '../logger/log-shipper';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import { MESSAGES_STREAM } from '../protocol';
import { CONVEYOR_TRANSPORT, RECONCILE_EXTRAS } from '../reconcile/reconcile.constants';
import type { ReconcileContext } from '../reconcile/reconcile-context';
import type { ReconcileHandlerMeta } from '../reconcile/reconcile.decorator';
import { ReconcileHandlerRegistry } from '../reconcile/reconcile-handler.registry';
import { checkStaleEvent } from '../reconcile/stale-event.check';
import type { ReconcileOutcome } from '../settlement/settlement.policy';
import type { ResultPort } from '../run/message-port';
import { DispatchStats, MessageRuns, emptyDispatchStats } from '../run/message-runs';
import type { LiveConsumer } from '../run/run-environment';
import { RunObserver, RunObservers } from '../run/run-events';
import { RunSlots } from '../run/run-slots';
import { ConsumerSession, SessionStatus } from './consumer-session';
import { abortable } from '../util/abortable';
import { backoffDelay, sleep } from '../util/backoff';
import { NatsLink, NatsLinkStatus } from './nats-link';
import { NatsResultPort } from './nats-result.port';
import { logRunErrorsOnce } from '../reconcile/handler-error-log';
import { RunCancellations } from '../run-control/run-cancellations';
import { DriverPresence } from '../registry/driver-presence';
import {
  ConveyorReadiness,
  ConveyorTransportEvent,
  ConveyorTransportEvents,
  ConveyorTransportState,
  TransportListeners,
  transportReadiness,
} from './conveyor-transport.types';

/** How long the last drain of the NATS connection may take before it is closed instead. */
const DRAIN_TIMEOUT_MS = 5000;

/**
 * The Conveyor transport: a Nest microservice `Server` that binds the driver's durable pull
 * consumer on `messages`, pulls only as many messages as it has free run slots, and dispatches
 * each through Nest's pipeline to its `@Reconcile` handler. Attach it with `connectConveyor(app)`.
 *
 * Shutdown follows Nest's hook order (`app.close()` or a signal with `enableShutdownHooks`):
 * `onModuleDestroy` stops pulling and drops readiness; `beforeApplicationShutdown` waits for
 * in-flight runs up to `shutdownTimeoutMs` while HTTP and every provider still work, then aborts and
 * naks what is left; `onApplicationShutdown` drains the NATS connection.
 */
@Injectable()
export class ConveyorStrategy
  extends Server<ConveyorTransportEvents, ConveyorTransportState>
  implements CustomTransportStrategy, OnModuleDestroy, BeforeApplicationShutdown, OnApplicationShutdown
{
  override readonly transportId = CONVEYOR_TRANSPORT;
  private readonly registry = new ReconcileHandlerRegistry<MessageHandler>();
  private readonly log = new Logger('ConveyorTransport');
  private readonly stopping = new AbortController();
  private readonly listeners = new TransportListeners();
  private readonly observers = new RunObservers();
  private readonly slots: RunSlots;
  private readonly link: NatsLink;
  /** This replica's entry in the driver registry (`conveyor-drivers`), from consuming to shutdown. */
  private readonly presence: DriverPresence;
  private nc?: NatsConnection;
  private port?: NatsResultPort;
  private runs?: MessageRuns;
  private session?: ConsumerSession;
  private loop?: Promise<void>;
  private attachExpected = false;
  private current: ConveyorTransportState = 'idle';
  private sessionStatus: SessionStatus = { pulling: false, reason: 'not started' };
  private consuming!: Promise<void>;
  private markConsuming!: () => void;
  private connected!: Promise<void>;
  private markConnected!: () => void;
  private runsDrained?: Promise<void>;
  private closing?: Promise<void>;
  /** Nest's own pass-through start hook: when still in place, a run skips the hook wrapper. */
  private readonly defaultStartHook = this.onProcessingStartHook;

  constructor(
    @Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig,
    @Inject(ConveyorClient) private readonly client: ConveyorClient,
    @Inject(LogShipper) private readonly logs: LogShipper,
    @Inject(RunCancellations) private readonly cancels: RunCancellations,
  ) {
    super();
    logRunErrorsOnce();
    this.link = new NatsLink(config, this.log);
    this.slots = new RunSlots(config.concurrency, () => {
      this.session?.schedulePull();
      // A run ended: the registry's "in flight" follows within a second, not at the next heartbeat.
      this.presence.changed();
    });
    this.presence = new DriverPresence(
      () => ({
        driver: config.driverName,
        resources: this.registry.resources().map((resource) => ({
          resource,
          events: this.registry
            .handlers()
            .filter((meta) => meta.resource === resource)
            .reduce<string[] | null>(
              (all, meta) => (all === null || !meta.events ? null : [...all, ...meta.events]),
              [],
            ),
        })),
        concurrency: config.concurrency,
        inFlight: this.inFlight,
        state: this.current,
      }),
      this.log,
    );
    this.consuming = new Promise((resolve) => (this.markConsuming = resolve));
    this.connected = new Promise((resolve) => (this.markConnected = resolve));
  }

  /** Current state (for health checks and tests). */
  get state(): ConveyorTransportState {
    return this.current;
  }

  /**
   * Ready to take work: the consumer is bound and pulled, and NATS is connected. False while
   * connecting or binding, while the consumer session recovers, during a NATS outage, and from the
   * first moment of shutdown.
   */
  get isReady(): boolean {
    return this.readiness.ready;
  }

  /** Readiness with the reason when not ready (what `/health/ready` reports). */
  get readiness(): ConveyorReadiness {
    const stuck = this.runs?.stuck ?? [];
    const readiness = transportReadiness({
      stopping: this.stopping.signal.aborted,
      state: this.current,
      connection: this.nc !== undefined,
      nats: this.link.status,
      session: this.sessionStatus,
    });
    return stuck.length > 0 ? { ...readiness, stuck } : readiness;
  }

  /** The NATS server (without credentials), whether connected, and the last connection failure. */
  get natsStatus(): NatsLinkStatus {
    return this.link.status;
  }

  /** Info of the bound consumer, once bound (refreshed every few seconds). */
  get consumerInfo(): ConsumerInfo | undefined {
    return this.session?.consumerInfo;
  }

  /** Runs in flight right now. */
  get inFlight(): number {
    return this.runs?.size ?? 0;
  }

  /** What happened to messages so far (by settlement row), runs in flight and runs past their timeout. */
  get stats(): DispatchStats {
    return this.runs?.stats ?? emptyDispatchStats();
  }

  /** Reports runs and settlements to `observer` (metrics, tests). */
  observe(observer: RunObserver): void {
    this.observers.add(observer);
  }

  /** Resolves once the consumer is bound and pulling. */
  whenConsuming(): Promise<void> {
    return this.consuming;
  }

  /**
   * @internal Resolves once the transport has a NATS connection (the first time; {@link unwrap}
   * then gives the current one). Never, unless it {@link dials}.
   */
  whenConnected(): Promise<void> {
    return this.connected;
  }

  /** @internal Whether the transport dials NATS: it listens, with `@Reconcile` handlers. */
  get dials(): boolean {
    return this.loop !== undefined;
  }

  /** @internal `connectConveyor` announces the attach before `app.init()`, so the startup check passes. */
  expectAttachment(): void {
    if (this.attachExpected)
      throw new Error('connectConveyor(app) was called twice: the Conveyor transport is already attached');
    this.attachExpected = true;
  }

  /** @internal True once the transport was (or is about to be) attached to the app. */
  get isAttached(): boolean {
    return this.attachExpected || this.registry.size > 0;
  }

  /**
   * @internal The runs of this transport over `port`: the NATS connection's, or the testing
   * module's in-memory one. Both run the same state machine with the same handlers and hooks.
   */
  createRuns(port: ResultPort, consumer: () => LiveConsumer, onLeave?: () => void): MessageRuns {
    return new MessageRuns(
      {
        config: this.config,
        registry: this.registry,
        logger: this.log,
        logs: this.logs,
        observers: this.observers,
        slots: this.slots,
        port,
        consumer,
        around: (ctx, invoke) => this.withProcessingHooks(ctx, invoke),
        checkStale: this.config.staleEventGuard
          ? (decoded, route) => checkStaleEvent(this.client, decoded, route)
          : undefined,
        cancelReasonOf: (runId) => this.cancels.reasonOf(runId),
      },
      onLeave,
    );
  }

  /** Called by Nest's ListenersController for every pattern bound to this transport (or to none). */
  override addHandler(
    pattern: unknown,
    callback: MessageHandler,
    _isEventHandler = false,
    extras: Record<string, unknown> = {},
  ): void {
    const meta = extras[RECONCILE_EXTRAS] as ReconcileHandlerMeta | undefined;
    if (!meta) {
      // Nest offers every transport-less @EventPattern/@MessagePattern to every server.
      this.log.warn(
        `ignoring pattern ${JSON.stringify(pattern)}: only @Reconcile handlers run on the Conveyor transport`,
      );
      return;
    }
    this.registry.add(meta, callback);
  }

  listen(callback: (...optionalParams: unknown[]) => void): void {
    const resources = this.registry.resources();
    if (resources.length === 0) {
      this.log.warn('no @Reconcile handlers: the Conveyor transport stays idle');
    } else {
      this.log.log(
        `driver "${this.config.driverName}" reconciles ${resources.join(', ')} (concurrency ${this.config.concurrency})`,
      );
      for (const meta of this.registry.handlers()) {
        if (meta.concurrency !== undefined && meta.concurrency > this.config.concurrency) {
          this.log.warn(
            `${meta.handler} allows concurrency ${meta.concurrency}, above the instance's ${this.config.concurrency}: ` +
              'the instance limit applies (raise the module option "concurrency")',
          );
        }
      }
      // Bind in the background: HTTP (health) comes up while NATS or the streams are not there yet.
      this.loop = this.run(resources).catch((err) =>
        this.log.error(`transport stopped: ${(err as Error).stack ?? err}`),
      );
    }
    callback();
  }

  /** First shutdown hook: stop pulling and turn readiness down, before anything else closes. */
  async onModuleDestroy(): Promise<void> {
    this.stopPulling();
  }

  /** Waits for in-flight runs while HTTP, the client and the log sinks still work. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.drainRuns();
  }

  /** Called by Nest when the microservice closes (after HTTP); the connection stays for the last hook. */
  async close(): Promise<void> {
    await this.drainRuns();
  }

  /** Last shutdown hook: flush and close the NATS connection. */
  async onApplicationShutdown(): Promise<void> {
    await this.drainRuns();
    this.closing ??= (async () => {
      // Gone from the registry once no run is left here, while the connection still works.
      await this.presence.stop();
      // Sinks flush over this connection: close them first.
      await this.logs.close();
      if (this.nc && !this.nc.isClosed()) {
        const nc = this.nc;
        // drain() cannot flush while disconnected and would leave the reconnect loop running; and
        // it waits on the server (every subscription's flush): bounded like any network wait.
        const drained = this.link.status.connected
          ? await abortable(nc.drain(), undefined, DRAIN_TIMEOUT_MS).catch((err: Error) => err)
          : new Error('not connected');
        if (drained instanceof Error || drained.ended !== 'done') {
          const why = drained instanceof Error ? drained.message : `not done within ${DRAIN_TIMEOUT_MS} ms`;
          this.log.warn(`NATS drain failed (${why}): closing the connection`);
          await abortable(nc.close(), undefined, DRAIN_TIMEOUT_MS).catch(() => undefined);
        }
      }
      if (this.current !== 'idle') this.setState('closed');
    })();
    await this.closing;
  }

  private stopPulling(): void {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    if (this.current !== 'idle') this.setState('draining');
    this.presence.changed();
  }

  private drainRuns(): Promise<void> {
    this.runsDrained ??= (async () => {
      this.stopPulling();
      const inFlight = this.inFlight;
      if (inFlight > 0) {
        this.log.log(`shutdown: waiting up to ${this.config.shutdownTimeoutMs} ms for ${inFlight} run(s)`);
      }
      const left = (await this.runs?.drain(this.config.shutdownTimeoutMs)) ?? [];
      // The loop ends once its session sees the stop; a wait that never ends here (a missed abort,
      // as once in consumer-session.ts) would hold every later shutdown hook, so it is bounded and
      // named. Closing the connection in the last hook ends whatever is left of it.
      const loopEnded = this.loop && (await abortable(this.loop, undefined, DRAIN_TIMEOUT_MS));
      if (loopEnded && loopEnded.ended !== 'done') {
        this.log.error(
          `shutdown: the consumer loop did not stop within ${DRAIN_TIMEOUT_MS} ms (state ${this.current}): going on`,
        );
      }
      if (left.length > 0) {
        // Their messages were nak'd (another replica may run them now); their handlers were not stopped.
        this.log.error(
          `shutdown: ${left.length} run(s) still running past the shutdown deadline, going on without them: ${left.join('; ')}`,
        );
      } else if (inFlight > 0) this.log.log('shutdown: every run settled');
    })();
    return this.runsDrained;
  }

  on<K extends ConveyorTransportEvent>(event: K, callback: ConveyorTransportEvents[K]): void {
    this.listeners.add(event, callback);
  }

  /** The live NATS connection. @throws when not connected yet. */
  unwrap<T = NatsConnection>(): T {
    if (!this.nc) throw new Error('the Conveyor transport is not connected yet');
    return this.nc as T;
  }

  private setState(state: ConveyorTransportState): void {
    this.current = state;
    this._status$.next(state);
  }

  /**
   * Dials, serves the consumer session, and dials again whatever ends it (nats.js closing the
   * connection for good, a session that fails): the transport never stops by itself.
   */
  private async run(resources: string[]): Promise<void> {
    const signal = this.stopping.signal;
    for (let dial = 1; !signal.aborted; dial++) {
      this.setState('connecting');
      const nc = await this.link.connect(signal);
      if (!nc) return;
      if (signal.aborted) {
        // Shutdown began while the connect was in flight: nobody would close this connection.
        await abortable(nc.close(), undefined, DRAIN_TIMEOUT_MS).catch(() => undefined);
        return;
      }
      const why = await this.serve(nc, resources, signal).catch(async (err: unknown) => {
        await abortable(nc.close(), undefined, DRAIN_TIMEOUT_MS).catch(() => undefined);
        return `its session failed: ${this.config.redactor.redact(String((err as Error)?.message ?? err))}`;
      });
      if (signal.aborted) return;
      this.log.error(`the NATS connection was closed for good (${why ?? 'no reason given'}): dialing again`);
      await sleep(backoffDelay(dial, 500, 10_000), signal);
    }
  }

  /** Runs the consumer session over `nc` until shutdown or until `nc` closes; returns why it closed. */
  private async serve(
    nc: NatsConnection,
    resources: string[],
    signal: AbortSignal,
  ): Promise<string | undefined> {
    this.nc = nc;
    this.markConnected();
    this.logs.attach(nc);
    const remembered = this.cancels.listen(nc, this.config.cancelTtlMs);
    void this.link.watch(nc, {
      disconnect: (server) => this.listeners.emit('disconnect', server),
      reconnect: (server) => {
        // The server forgot our pull requests with the old connection: pull again right away.
        this.session?.reconnected();
        this.observers.reconnected();
        this.listeners.emit('reconnect', server);
      },
      error: (error) => this.listeners.emit('error', error),
    });
    const closedForGood = new AbortController();
    const closed = this.link.closed(nc).finally(() => closedForGood.abort());
    this.setState('binding');
    const port = this.port ?? (this.port = new NatsResultPort(nc, this.config, this.logs, this.log));
    port.use(nc);
    const runs: MessageRuns = (this.runs ??= this.createRuns(
      port,
      () => this.session!.consumer,
      () => this.session?.schedulePull(),
    ));
    this.cancels.addListener(runs);
    const session: ConsumerSession = (this.session = new ConsumerSession({
      nc,
      // No API check here: JetStream may be down right now, and binding retries until it answers.
      jsm: await nc.jetstreamManager({ checkAPI: false }),
      config: this.config,
      resources,
      runs,
      slots: this.slots,
      logger: this.log,
      observers: this.observers,
      onStatus: (status) => this.onSessionStatus(status),
    }));
    await remembered; // the first pull comes after the remembered cancels are known
    await session.run(AbortSignal.any([signal, closedForGood.signal]));
    return signal.aborted ? undefined : closed;
  }

  private onSessionStatus(status: SessionStatus): void {
    const was = this.sessionStatus;
    this.sessionStatus = status;
    if (this.stopping.signal.aborted) return;
    if (status.pulling) {
      this.setState('consuming');
      if (!was.pulling) this.log.log(`consuming "${this.config.driverName}" on "${MESSAGES_STREAM}"`);
      this.markConsuming();
      // Listed once it takes work (and again over each new connection after a redial).
      if (this.nc) this.presence.start(this.nc);
    } else {
      this.setState(this.current === 'connecting' || this.current === 'binding' ? 'binding' : 'recovering');
      this.presence.changed();
    }
  }

  private withProcessingHooks(
    ctx: ReconcileContext,
    invoke: () => Promise<ReconcileOutcome>,
  ): Promise<ReconcileOutcome> {
    // No instrumentation set a hook (setOnProcessingStartHook/EndHook): nothing to wrap.
    if (this.onProcessingStartHook === this.defaultStartHook && !this.onProcessingEndHook) return invoke();
    return new Promise<ReconcileOutcome>((resolve, reject) => {
      this.onProcessingStartHook(this.transportId, ctx, async () => {
        try {
          resolve(await invoke());
        } catch (err) {
          reject(err);
        } finally {
          this.onProcessingEndHook?.(this.transportId, ctx);
        }
      });
    });
  }
}
