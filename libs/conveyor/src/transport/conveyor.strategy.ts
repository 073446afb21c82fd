import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationShutdown,
  OnModuleDestroy,
} from '@nestjs/common';
import { CustomTransportStrategy, MessageHandler, Server } from '@nestjs/microservices';
import { ConsumerInfo, ConsumerMessages, JetStreamManager, NatsConnection } from 'nats';
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
import { backoffDelay, sleep } from './backoff';
import { ConcurrencyGate } from './concurrency-gate';
import { bindWithRetry, heartbeatIntervalMs, missingResource, resumePoint } from './consumer-binding';
import { DispatchStats, MessageDispatcher } from './message-dispatcher';
import { RunObserver, RunObservers } from './run-events';
import { connectWithRetry } from './nats-connection';

/** Where the transport is in its life; `consuming` means the consumer is bound and pulled. */
export type ConveyorTransportState = 'idle' | 'connecting' | 'binding' | 'consuming' | 'draining' | 'closed';

/** Events `on()` accepts, with the callback each one gets (the NATS server, or the error text). */
export type ConveyorTransportEvents = {
  disconnect: (server: string) => void;
  reconnect: (server: string) => void;
  error: (error: string) => void;
};
export type ConveyorTransportEvent = keyof ConveyorTransportEvents;

/** How long one pull waits for messages before asking again. */
const PULL_EXPIRES_MS = 10_000;
/** How often the consumer info is refreshed (ack floor for a re-creation; pending counts). */
const CONSUMER_SAMPLE_MS = 5000;

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
  private readonly gate: ConcurrencyGate;
  private readonly stopping = new AbortController();
  private readonly listeners = new Map<ConveyorTransportEvent, Set<(arg: string) => void>>();
  private readonly observers = new RunObservers();
  private nc?: NatsConnection;
  private dispatcher?: MessageDispatcher;
  private batch?: ConsumerMessages;
  private loop?: Promise<void>;
  private attachExpected = false;
  private current: ConveyorTransportState = 'idle';
  private consumer?: ConsumerInfo;
  private consuming!: Promise<void>;
  private markConsuming!: () => void;
  private connected = false;
  private runsDrained?: Promise<void>;
  /** Where the last re-created consumer started (its ack floor until it reports its own). */
  private resumedAfter?: number;
  private closing?: Promise<void>;

  constructor(
    @Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig,
    @Inject(ConveyorClient) private readonly client: ConveyorClient,
    @Inject(LogShipper) private readonly logs: LogShipper,
  ) {
    super();
    this.gate = new ConcurrencyGate(config.concurrency);
    this.consuming = new Promise((resolve) => (this.markConsuming = resolve));
  }

  /** Current state (for health checks and tests). */
  get state(): ConveyorTransportState {
    return this.current;
  }

  /**
   * Ready to take work: the consumer is bound and pulled, and NATS is connected. False while
   * connecting or binding, during a NATS outage, and from the first moment of shutdown.
   */
  get isReady(): boolean {
    return this.current === 'consuming' && this.connected;
  }

  /** Info of the bound consumer, once bound (refreshed every few seconds). */
  get consumerInfo(): ConsumerInfo | undefined {
    return this.consumer;
  }

  /** Runs in flight right now. */
  get inFlight(): number {
    return this.dispatcher?.inFlight ?? 0;
  }

  /** What happened to messages so far (by settlement row), runs in flight and runs past their timeout. */
  get stats(): DispatchStats {
    return this.dispatcher?.stats ?? MessageDispatcher.emptyStats();
  }

  /** Reports runs and settlements to `observer` (metrics, tests). */
  observe(observer: RunObserver): void {
    this.observers.add(observer);
  }

  /** Resolves once the consumer is bound and pulling. */
  whenConsuming(): Promise<void> {
    return this.consuming;
  }

  /** @internal `connectConveyor` announces the attach before `app.init()`, so the startup check passes. */
  expectAttachment(): void {
    if (this.attachExpected)
      throw new Error('connectConveyor(app) was called twice: the Conveyor transport is already attached');
    this.attachExpected = true;
  }

  /** @internal The route table of registered `@Reconcile` handlers (the testing module runs them without NATS). */
  get handlerRegistry(): ReconcileHandlerRegistry<MessageHandler> {
    return this.registry;
  }

  /** @internal True once the transport was (or is about to be) attached to the app. */
  get isAttached(): boolean {
    return this.attachExpected || this.registry.size > 0;
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
    await this.stopPulling();
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
      // Sinks flush over this connection: close them first.
      await this.logs.close();
      if (this.nc && !this.nc.isClosed()) {
        // drain() cannot flush while disconnected and would leave the reconnect loop running.
        await (this.connected ? this.nc.drain() : Promise.reject(new Error('not connected'))).catch(
          async (err) => {
            this.log.warn(`NATS drain failed (${(err as Error).message}): closing the connection`);
            await this.nc!.close();
          },
        );
      }
      if (this.current !== 'idle') this.setState('closed');
    })();
    await this.closing;
  }

  private async stopPulling(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    if (this.current === 'idle') return;
    this.setState('draining');
    await this.batch?.close().catch(() => undefined);
  }

  private drainRuns(): Promise<void> {
    this.runsDrained ??= (async () => {
      await this.stopPulling();
      const inFlight = this.inFlight;
      if (inFlight > 0) {
        this.log.log(`shutdown: waiting up to ${this.config.shutdownTimeoutMs} ms for ${inFlight} run(s)`);
      }
      await this.dispatcher?.drain(this.config.shutdownTimeoutMs);
      await this.loop;
      if (inFlight > 0) this.log.log('shutdown: every run settled');
    })();
    return this.runsDrained;
  }

  on<K extends ConveyorTransportEvent>(event: K, callback: ConveyorTransportEvents[K]): void {
    const set = this.listeners.get(event) ?? new Set();
    set.add(callback);
    this.listeners.set(event, set);
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

  private emit(event: ConveyorTransportEvent, arg: string): void {
    this.listeners.get(event)?.forEach((cb) => cb(arg));
  }

  private async run(resources: string[]): Promise<void> {
    const signal = this.stopping.signal;
    this.setState('connecting');
    const nc = await connectWithRetry(this.config, this.log, signal);
    if (!nc) return;
    if (signal.aborted) {
      // Shutdown began while the connect was in flight: nobody would close this connection.
      await nc.close();
      return;
    }
    this.nc = nc;
    this.connected = true;
    this.logs.attach(nc);
    void this.watchConnection(nc);

    this.setState('binding');
    const jsm = await nc.jetstreamManager();
    this.consumer = await bindWithRetry(jsm, this.config, resources, this.log, signal);
    if (!this.consumer) return;

    const maxDeliver = this.consumer.config.max_deliver ?? -1;
    if (maxDeliver > 0 && maxDeliver < this.config.maxAttempts) {
      this.log.warn(
        `consumer "${this.config.driverName}" has max_deliver ${maxDeliver}, below maxAttempts ${this.config.maxAttempts}: ` +
          `retries give up after ${maxDeliver} attempts`,
      );
    }
    this.dispatcher = new MessageDispatcher({
      config: this.config,
      nc,
      js: nc.jetstream(),
      registry: this.registry,
      logger: this.log,
      logs: this.logs,
      observers: this.observers,
      heartbeatMs: heartbeatIntervalMs(this.consumer),
      maxDeliver,
      around: (ctx, invoke) => this.withProcessingHooks(ctx, invoke),
      checkStale: this.config.staleEventGuard
        ? (decoded, route) => checkStaleEvent(this.client, decoded, route)
        : undefined,
    });
    const sampler = setInterval(() => void this.sampleConsumer(jsm), CONSUMER_SAMPLE_MS);
    try {
      this.setState('consuming');
      this.markConsuming();
      this.log.log(`consuming "${this.config.driverName}" on "${MESSAGES_STREAM}"`);
      await this.pull(jsm, resources, this.dispatcher);
    } finally {
      clearInterval(sampler);
    }
  }

  /** The pull loop: only as many messages as there are free slots; re-creates a deleted consumer. */
  private async pull(
    jsm: JetStreamManager,
    resources: string[],
    dispatcher: MessageDispatcher,
  ): Promise<void> {
    const signal = this.stopping.signal;
    const js = this.nc!.jetstream();
    let consumer = await js.consumers.get(MESSAGES_STREAM, this.config.driverName);
    for (let failures = 0; !signal.aborted;) {
      await this.gate.waitForFree(signal);
      if (signal.aborted) break;
      try {
        this.batch = await consumer.fetch({ max_messages: this.gate.free, expires: PULL_EXPIRES_MS });
        for await (const msg of this.batch) {
          if (signal.aborted) {
            await dispatcher.reject(msg);
            continue;
          }
          this.gate.acquire();
          void dispatcher
            .dispatch(msg)
            .catch((err) =>
              this.log.error(`dispatch of stream seq ${msg.seq} failed: ${(err as Error).stack ?? err}`),
            )
            .finally(() => this.gate.release());
        }
        failures = 0;
      } catch (err) {
        failures += 1;
        if (signal.aborted) break;
        this.log.warn(`pulling from "${this.config.driverName}" failed: ${(err as Error).message}; retrying`);
        const missing = await missingResource(jsm, this.config.driverName);
        if (missing) {
          if (!(await this.rebind(jsm, resources, missing))) break;
          consumer = await js.consumers.get(MESSAGES_STREAM, this.config.driverName);
          continue;
        }
        await sleep(backoffDelay(failures, 250, 5000), signal);
      }
    }
  }

  /** The consumer (or its stream) vanished under us: bind again, resuming after the last ack floor. */
  private async rebind(
    jsm: JetStreamManager,
    resources: string[],
    missing: 'consumer' | 'stream',
  ): Promise<boolean> {
    this.setState('binding');
    const sampled =
      missing === 'consumer' ? await resumePoint(jsm, this.consumer).catch(() => undefined) : undefined;
    // A consumer re-created moments ago reports no ack floor yet: keep the point it started from.
    const after =
      missing === 'consumer' ? Math.max(sampled ?? 0, this.resumedAfter ?? 0) || undefined : undefined;
    this.resumedAfter = after;
    this.log.warn(
      `consumer "${this.config.driverName}" ${missing === 'consumer' ? 'was deleted' : 'lost its stream'}: re-creating it` +
        (after ? ` after stream seq ${after} (its last ack floor)` : ''),
    );
    const info = await bindWithRetry(jsm, this.config, resources, this.log, this.stopping.signal, {
      startAfterSequence: after,
    });
    if (!info) return false;
    this.consumer = info;
    this.setState('consuming');
    return true;
  }

  private async sampleConsumer(jsm: JetStreamManager): Promise<void> {
    try {
      this.consumer = await jsm.consumers.info(MESSAGES_STREAM, this.config.driverName);
    } catch {
      /* a deleted consumer is handled by the pull loop; keep the last info for its ack floor */
    }
  }

  private withProcessingHooks(
    ctx: ReconcileContext,
    invoke: () => Promise<ReconcileOutcome>,
  ): Promise<ReconcileOutcome> {
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

  private async watchConnection(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.connected = false;
        this.log.warn(`disconnected from NATS ${status.data}`);
        this.emit('disconnect', String(status.data));
      } else if (status.type === 'reconnect') {
        this.connected = true;
        this.observers.reconnected();
        this.log.log(`reconnected to NATS ${status.data}`);
        this.emit('reconnect', String(status.data));
      } else if (status.type === 'error') {
        this.log.error(`NATS error: ${status.data}`);
        this.emit('error', String(status.data));
      }
    }
  }
}
