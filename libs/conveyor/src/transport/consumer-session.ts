import type { LoggerService } from '@nestjs/common';
import type { ConsumerInfo, JetStreamManager, NatsConnection } from 'nats';
import type { ConveyorConfig } from '../module/conveyor.options';
import { MESSAGES_STREAM } from '../protocol';
import type { MessageRuns } from '../run/message-runs';
import type { LiveConsumer } from '../run/run-environment';
import type { RunObservers } from '../run/run-events';
import type { RunSlots } from '../run/run-slots';
import { backoffDelay, sleep } from '../util/backoff';
import { bindWithRetry, heartbeatIntervalMs, missingResource, resumePoint } from './consumer-binding';
import { PullRequester } from './pull-requests';

/** How often the consumer info is refreshed (ack floor for a re-creation, AckWait, max_deliver, pending counts). */
const CONSUMER_SAMPLE_MS = 5000;

/** Whether the session pulls, and if not, why. */
export interface SessionStatus {
  pulling: boolean;
  reason?: string;
}

type Trouble = 'consumer' | 'stream' | { error: unknown };

export interface ConsumerSessionDeps {
  nc: NatsConnection;
  jsm: JetStreamManager;
  config: ConveyorConfig;
  resources: string[];
  runs: MessageRuns;
  slots: RunSlots;
  logger: LoggerService;
  observers: RunObservers;
  onStatus: (status: SessionStatus) => void;
}

/**
 * The driver's consumer session: binds the durable consumer, pulls only what free slots can take,
 * re-binds a deleted consumer, and samples the live consumer. It is supervised: anything that
 * escapes restarts it with backoff, and readiness says why it is not pulling meanwhile.
 */
export class ConsumerSession {
  private info?: ConsumerInfo;
  private live: LiveConsumer = { maxDeliver: -1, heartbeatMs: 15_000 };
  private requester?: PullRequester;
  private pullQueued = false;
  private pulling = false;
  private trouble?: (t: Trouble) => void;
  /** Where the last re-created consumer started (its ack floor until it reports its own). */
  private resumedAfter?: number;

  constructor(private readonly deps: ConsumerSessionDeps) {}

  get consumerInfo(): ConsumerInfo | undefined {
    return this.info;
  }

  /** What the runs need of the live consumer; follows every sample. */
  get consumer(): LiveConsumer {
    return this.live;
  }

  /** Runs until `signal` aborts, restarting after any failure. */
  async run(signal: AbortSignal): Promise<void> {
    for (let failures = 0; !signal.aborted;) {
      try {
        await this.session(signal);
        return;
      } catch (err) {
        failures += 1;
        const reason = `consumer session failed: ${(err as Error)?.message ?? err}`;
        this.status(false, `${reason}; restarting`);
        this.deps.observers.sessionRestarted({ reason });
        this.deps.logger.error(`${reason} (restart ${failures}): ${(err as Error)?.stack ?? ''}`);
        await sleep(backoffDelay(failures, 250, 5000), signal);
      }
    }
  }

  /** The connection is back: the server forgot our pull requests, so ask again now, not after they expire. */
  reconnected(): void {
    this.requester?.forget();
    this.schedulePull();
  }

  /** A slot freed or a run ended: pull what can be taken now (coalesced per event-loop turn). */
  schedulePull(): void {
    if (this.pullQueued || !this.pulling) return;
    this.pullQueued = true;
    setImmediate(() => {
      this.pullQueued = false;
      this.pullNow();
    });
  }

  private async session(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    this.status(false, 'binding the consumer');
    const info = await bindWithRetry(deps.jsm, deps.config, deps.resources, deps.logger, signal);
    if (!info) return;
    this.apply(info);
    const sampler = setInterval(() => void this.sample(), CONSUMER_SAMPLE_MS);
    this.requester = new PullRequester(
      deps.nc,
      deps.config.driverName,
      {
        message: (msg) => {
          void deps.runs.start(msg);
          // It may not need a run slot (its handler's own limit is used up): keep the window full.
          this.schedulePull();
        },
        consumerDeleted: () => this.trouble?.('consumer'),
        warn: (text) => deps.logger.warn(text),
      },
      () => this.schedulePull(),
    );
    try {
      for (;;) {
        this.status(true);
        this.schedulePull();
        const trouble = await this.nextTrouble(signal);
        if (signal.aborted) return;
        if (typeof trouble === 'object') throw trouble.error;
        if (trouble === undefined) continue;
        this.status(
          false,
          trouble === 'consumer'
            ? 'the consumer was deleted: re-creating it'
            : 'the stream is missing: binding again',
        );
        this.requester.forget();
        if (!(await this.rebind(trouble, signal))) return;
      }
    } finally {
      this.pulling = false;
      clearInterval(sampler);
      await this.requester.close();
      this.requester = undefined;
    }
  }

  private nextTrouble(signal: AbortSignal): Promise<Trouble | undefined> {
    return new Promise((resolve) => {
      // An AbortSignal fires `abort` once: a stop that landed during the bind (or in status()'s
      // callback) has fired already, and waiting for it again would hold app.close() for good.
      if (signal.aborted) return resolve(undefined);
      const stop = () => resolve(undefined);
      signal.addEventListener('abort', stop, { once: true });
      this.trouble = (t) => {
        signal.removeEventListener('abort', stop);
        this.trouble = undefined;
        resolve(t);
      };
    });
  }

  private pullNow(): void {
    const { runs, slots, config } = this.deps;
    if (!this.pulling || !this.requester) return;
    try {
      // Free slots (plus the prefetch while handlers are quick) not already promised to messages
      // that arrived or were asked for; and never more than twice the slots, plus two, held at
      // once: results still publishing count too, so a stuck publish cannot pull without bound.
      const requester = this.requester;
      const forSlots = slots.free + runs.prefetch - runs.queued - requester.outstanding;
      const forHolding = 2 * config.concurrency + 2 - runs.size - requester.outstanding;
      requester.pull(Math.min(forSlots, forHolding));
    } catch (err) {
      this.trouble?.({ error: err });
    }
  }

  /** The consumer (or its stream) vanished under us: bind again, resuming after the last ack floor. */
  private async rebind(missing: 'consumer' | 'stream', signal: AbortSignal): Promise<boolean> {
    const { jsm, config, resources, logger } = this.deps;
    const sampled =
      missing === 'consumer' ? await resumePoint(jsm, this.info).catch(() => undefined) : undefined;
    // A consumer re-created moments ago reports no ack floor yet: keep the point it started from.
    const after =
      missing === 'consumer' ? Math.max(sampled ?? 0, this.resumedAfter ?? 0) || undefined : undefined;
    this.resumedAfter = after;
    logger.warn(
      `consumer "${config.driverName}" ${missing === 'consumer' ? 'was deleted' : 'lost its stream'}: re-creating it` +
        (after ? ` after stream seq ${after} (its last ack floor)` : ''),
    );
    const info = await bindWithRetry(jsm, config, resources, logger, signal, { startAfterSequence: after });
    if (!info) return false;
    this.apply(info);
    return true;
  }

  private async sample(): Promise<void> {
    try {
      this.apply(await this.deps.jsm.consumers.info(MESSAGES_STREAM, this.deps.config.driverName));
    } catch {
      // Keep the last info (its ack floor) and find out whether something is gone.
      const missing = await missingResource(this.deps.jsm, this.deps.config.driverName).catch(
        () => undefined,
      );
      if (missing) this.trouble?.(missing);
    }
  }

  /** AckWait and max_deliver can be changed on a live consumer: follow them. */
  private apply(info: ConsumerInfo): void {
    const before = this.live;
    this.info = info;
    this.live = { maxDeliver: info.config.max_deliver ?? -1, heartbeatMs: heartbeatIntervalMs(info) };
    const { maxDeliver } = this.live;
    // A shorter AckWait must not wait for the old heartbeat period to pass.
    if (this.live.heartbeatMs !== before.heartbeatMs) this.deps.runs.consumerChanged();
    if (maxDeliver !== before.maxDeliver && maxDeliver > 0 && maxDeliver < this.deps.config.maxAttempts) {
      this.deps.logger.warn(
        `consumer "${this.deps.config.driverName}" has max_deliver ${maxDeliver}, below maxAttempts ${this.deps.config.maxAttempts}: ` +
          `retries give up after ${maxDeliver} attempts`,
      );
    }
  }

  private status(pulling: boolean, reason?: string): void {
    this.pulling = pulling;
    this.deps.onStatus({ pulling, reason });
  }
}
