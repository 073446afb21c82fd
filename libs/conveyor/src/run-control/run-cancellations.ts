import { Injectable, Logger } from '@nestjs/common';
import type { KV, NatsConnection, Subscription } from 'nats';
import { CANCEL_SUBJECTS, RUN_CANCELS_BUCKET, RunCancelRequest, isSubjectToken } from '../protocol';
import { abortable } from '../util/abortable';

/** Whoever holds runs: told when one is cancelled. */
export interface CancelListener {
  cancel(runId: string, reason: string): number;
}

/** Remembered cancels beyond this many are dropped oldest first (a cancel storm must not grow the heap). */
const MAX_REMEMBERED = 10_000;
const MAX_REASON_CHARS = 500;
/** The longest a starting transport waits for the remembered cancels before it pulls. */
const REMEMBERED_LOAD_WAIT_MS = 2000;

/**
 * The cancels this replica knows of. Live ones arrive on core NATS (`conveyor-run.cancel.*`, every
 * replica subscribes); cancels for runs not delivered yet are also read from the
 * `conveyor-run-cancels` KV bucket (watched from startup, so a replica started after the cancel
 * still knows it) and kept for the bucket's TTL. A run checks here when it gets its slot; a running
 * one is aborted through its listener.
 */
@Injectable()
export class RunCancellations {
  private readonly log = new Logger('RunControl');
  private readonly remembered = new Map<string, { reason: string; until: number }>();
  private readonly listeners = new Set<CancelListener>();
  private ttlMs = 3_600_000;
  /** What the latest `listen` took on its connection. */
  private listening?: Listening;

  /**
   * Starts listening on `nc`: the core subject at once, the KV bucket's watch in the background.
   * Resolves once the bucket's remembered cancels are loaded, so runs pulled after it see them (a
   * replica started after a cancel must not run the cancelled step), or after
   * {@link REMEMBERED_LOAD_WAIT_MS} at the most: a slow or missing JetStream must not hold the driver.
   * Called again on a redial, with the new connection: what the previous call took is let go first,
   * so a cancel is heard once, and nothing of the old connection is left.
   */
  async listen(nc: NatsConnection, ttlMs: number): Promise<void> {
    this.close();
    this.ttlMs = ttlMs;
    const listening: Listening = (this.listening = {
      sub: nc.subscribe(CANCEL_SUBJECTS, { callback: (_err, msg) => this.receive(msg.data) }),
      stopped: false,
    });
    let loaded!: () => void;
    const ready = new Promise<void>((resolve) => (loaded = resolve));
    void this.watchBucket(nc, ttlMs, listening, loaded);
    await abortable(ready, undefined, REMEMBERED_LOAD_WAIT_MS);
  }

  /** Stops listening (the connection closes at shutdown anyway). */
  close(): void {
    const listening = this.listening;
    this.listening = undefined;
    if (!listening) return;
    listening.stopped = true;
    listening.sub.unsubscribe();
    listening.stopWatch?.();
  }

  /** `listener` hears every cancel from now on; returns the function that stops it. */
  addListener(listener: CancelListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The reason run `runId` was cancelled, while it is remembered. */
  reasonOf(runId: string): string | undefined {
    if (this.remembered.size === 0) return undefined;
    const entry = this.remembered.get(runId);
    if (!entry) return undefined;
    if (entry.until >= Date.now()) return entry.reason;
    this.remembered.delete(runId);
    return undefined;
  }

  /** A cancel for `runId`: remembered, and every live message of the run here is cancelled. */
  cancelled(runId: string, reason: string): void {
    if (!isSubjectToken(runId)) return;
    const text = String(reason).slice(0, MAX_REASON_CHARS) || 'cancelled by request';
    const isNew = !this.remembered.has(runId);
    this.remembered.delete(runId);
    this.remembered.set(runId, { reason: text, until: Date.now() + this.ttlMs });
    if (this.remembered.size > MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    let running = 0;
    for (const listener of this.listeners) running += listener.cancel(runId, text);
    if (isNew || running > 0)
      this.log.log(`run ${runId} cancelled (${text}): ${running} message(s) here stopped`);
  }

  private receive(bytes: Uint8Array): void {
    let request: Partial<RunCancelRequest>;
    try {
      request = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      this.log.warn('ignored a cancel request that is not JSON');
      return;
    }
    if (!isSubjectToken(request?.run_id)) {
      this.log.warn('ignored a cancel request without a valid run_id');
      return;
    }
    this.cancelled(request.run_id, typeof request.reason === 'string' ? request.reason : '');
  }

  private async watchBucket(
    nc: NatsConnection,
    ttlMs: number,
    listening: Listening,
    loaded: () => void,
  ): Promise<void> {
    let kv: KV;
    try {
      kv = await nc.jetstream().views.kv(RUN_CANCELS_BUCKET, { ttl: ttlMs, history: 1 });
    } catch (err) {
      if (!listening.stopped)
        this.log.warn(
          `cannot open the ${RUN_CANCELS_BUCKET} KV bucket (${(err as Error).message}): ` +
            'cancels reach runs in flight only, not runs delivered later',
        );
      loaded();
      return;
    }
    try {
      // Let go meanwhile (a redial, or shutdown): no watch is started for a listen that is over.
      if (listening.stopped) return;
      const watch = await kv.watch({ key: '>', initializedFn: loaded });
      listening.stopWatch = () => watch.stop();
      if (listening.stopped) watch.stop();
      for await (const entry of watch) {
        if (entry.operation === 'PUT') this.receive(entry.value);
      }
    } catch (err) {
      if (!nc.isClosed() && !listening.stopped)
        this.log.warn(`watching ${RUN_CANCELS_BUCKET} stopped: ${(err as Error).message}`);
    } finally {
      loaded();
    }
  }
}

/** The subscription and the bucket's watch one `listen` took on its connection. */
interface Listening {
  sub: Subscription;
  stopWatch?: () => void;
  /** Let go: a later `listen` took over, or `close` was called. */
  stopped: boolean;
}
