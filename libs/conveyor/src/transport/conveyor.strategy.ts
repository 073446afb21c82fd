import { Inject, Injectable, Logger } from '@nestjs/common';
import { CustomTransportStrategy, MessageHandler, Server } from '@nestjs/microservices';
import { ConsumerInfo, ConsumerMessages, NatsConnection } from 'nats';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import { MESSAGES_STREAM } from '../protocol';
import { CONVEYOR_TRANSPORT, RECONCILE_EXTRAS } from '../reconcile/reconcile.constants';
import type { ReconcileContext } from '../reconcile/reconcile-context';
import type { ReconcileHandlerMeta } from '../reconcile/reconcile.decorator';
import { ReconcileHandlerRegistry } from '../reconcile/reconcile-handler.registry';
import type { ReconcileOutcome } from '../settlement/settlement.policy';
import { backoffDelay, sleep } from './backoff';
import { ConcurrencyGate } from './concurrency-gate';
import { ConsumerBindingError, bindConsumer, heartbeatIntervalMs } from './consumer-binding';
import { DispatchStats, MessageDispatcher } from './message-dispatcher';
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

/**
 * The Conveyor transport: a Nest microservice `Server` that binds the driver's durable pull
 * consumer on `messages`, pulls only as many messages as it has free run slots, and dispatches
 * each through Nest's pipeline to its `@Reconcile` handler. Attach it with `connectConveyor(app)`.
 */
@Injectable()
export class ConveyorStrategy
  extends Server<ConveyorTransportEvents, ConveyorTransportState>
  implements CustomTransportStrategy
{
  override readonly transportId = CONVEYOR_TRANSPORT;
  private readonly registry = new ReconcileHandlerRegistry<MessageHandler>();
  private readonly log = new Logger('ConveyorTransport');
  private readonly gate: ConcurrencyGate;
  private readonly stopping = new AbortController();
  private readonly listeners = new Map<ConveyorTransportEvent, Set<(arg: string) => void>>();
  private nc?: NatsConnection;
  private dispatcher?: MessageDispatcher;
  private batch?: ConsumerMessages;
  private loop?: Promise<void>;
  private attachExpected = false;
  private current: ConveyorTransportState = 'idle';
  private consumer?: ConsumerInfo;
  private consuming!: Promise<void>;
  private markConsuming!: () => void;

  constructor(@Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig) {
    super();
    this.gate = new ConcurrencyGate(config.concurrency);
    this.consuming = new Promise((resolve) => (this.markConsuming = resolve));
  }

  /** Current state (for health checks and tests). */
  get state(): ConveyorTransportState {
    return this.current;
  }

  /** Info of the bound consumer, once bound. */
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

  async close(): Promise<void> {
    if (this.current === 'closed' || this.stopping.signal.aborted) return this.loop;
    this.setState('draining');
    this.stopping.abort();
    await this.batch?.close().catch(() => undefined);
    await this.dispatcher?.drain(this.config.shutdownTimeoutMs);
    await this.loop;
    await this.nc?.drain().catch((err) => this.log.warn(`NATS drain failed: ${(err as Error).message}`));
    this.setState('closed');
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
    this.nc = nc;
    void this.watchConnection(nc);

    this.setState('binding');
    const jsm = await nc.jetstreamManager();
    for (let attempt = 1; !this.consumer && !signal.aborted; attempt++) {
      try {
        this.consumer = await bindConsumer(jsm, this.config, resources, this.log);
      } catch (err) {
        const retryable = !(err instanceof ConsumerBindingError) || err.retryable;
        const text = `cannot bind consumer "${this.config.driverName}" (attempt ${attempt}): ${(err as Error).message}`;
        if (retryable) this.log.warn(text);
        else this.log.error(text);
        await sleep(backoffDelay(attempt, 500, retryable ? 10_000 : 30_000), signal);
      }
    }
    if (!this.consumer) return;

    const js = nc.jetstream();
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
      js,
      registry: this.registry,
      logger: this.log,
      heartbeatMs: heartbeatIntervalMs(this.consumer),
      maxDeliver,
      around: (ctx, invoke) => this.withProcessingHooks(ctx, invoke),
    });
    const consumer = await js.consumers.get(MESSAGES_STREAM, this.config.driverName);
    this.setState('consuming');
    this.markConsuming();

    for (let failures = 0; !signal.aborted;) {
      await this.gate.waitForFree(signal);
      if (signal.aborted) break;
      try {
        this.batch = await consumer.fetch({ max_messages: this.gate.free, expires: PULL_EXPIRES_MS });
        for await (const msg of this.batch) {
          if (signal.aborted) {
            await this.dispatcher.reject(msg);
            continue;
          }
          this.gate.acquire();
          void this.dispatcher
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
        await sleep(backoffDelay(failures, 250, 5000), signal);
      }
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
        this.log.warn(`disconnected from NATS ${status.data}`);
        this.emit('disconnect', String(status.data));
      } else if (status.type === 'reconnect') {
        this.log.log(`reconnected to NATS ${status.data}`);
        this.emit('reconnect', String(status.data));
      } else if (status.type === 'error') {
        this.log.error(`NATS error: ${status.data}`);
        this.emit('error', String(status.data));
      }
    }
  }
}
