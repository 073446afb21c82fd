import type { LoggerService } from '@nestjs/common';
import { ErrorCode, JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import type { LogShipper } from '../logger/log-shipper';
import type { ConveyorConfig } from '../module/conveyor.options';
import { RESULT_SUBJECT, RunProgress, encodeGoJson, progressSubject } from '../protocol';
import { ResultPort, ResultRefusedError } from '../run/message-port';
import { DeadLetterRecord, recordDeadLetter } from '../settlement/dead-letter';
import { JetStreamPublisher } from './jetstream.publisher';
import { KvLeaseStore } from '../run-control/resource-leases';
import { abortable } from '../util/abortable';
import { publishCancel } from '../run-control/run-control.nats';

const PUBLISH_TIMEOUT_MS = 5000;
/** An unanswered result is sent again this often within its timeout (a leader election drops it silently). */
const RESEND_AFTER_MS = 1000;
/** nats-server's default `max_payload`, until the server's INFO says otherwise. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** Results, dead letters, log flushes, progress and resource leases of the runs on one NATS connection. */
export class NatsResultPort implements ResultPort {
  private js: JetStreamClient;
  private publisher: JetStreamPublisher;
  private jsm?: Promise<JetStreamManager>;

  constructor(
    private nc: NatsConnection,
    private readonly config: ConveyorConfig,
    private readonly logs: LogShipper,
    private readonly logger: LoggerService,
  ) {
    this.js = nc.jetstream();
    this.publisher = new JetStreamPublisher(nc, { resendAfterMs: RESEND_AFTER_MS });
    this.leases = new KvLeaseStore(nc, config.leaseTtlMs, logger);
  }

  /** Follows the connection: leases held across a redial renew over the new one. */
  readonly leases: KvLeaseStore;

  async cancelRun(runId: string, reason: string): Promise<void> {
    await publishCancel(this.nc, runId, reason, this.config.cancelTtlMs);
  }

  /**
   * Publishes over `nc` from now on: nats.js closed the old connection for good and the transport
   * dialed a new one. Results being retried go out on the new one.
   */
  use(nc: NatsConnection): void {
    if (nc === this.nc) return;
    this.nc = nc;
    this.js = nc.jetstream();
    // The old publisher's sweeper would keep the dead connection referenced, and no answer can come
    // for what it still waits for: failed now (a transient error), those runs retry over `nc` at once.
    this.publisher.close();
    this.publisher = new JetStreamPublisher(nc, { resendAfterMs: RESEND_AFTER_MS });
    this.leases.use(nc);
    this.jsm = undefined;
  }

  /** From the INFO of the server we are connected to now (it can change with a reconnect). */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  async publishResult(bytes: Uint8Array, msgId: string): Promise<void> {
    try {
      await this.publisher.publish(RESULT_SUBJECT, bytes, msgId, PUBLISH_TIMEOUT_MS);
    } catch (err) {
      // No responders means either JetStream is not ready (transient) or no stream captures the
      // subject (permanent); a timeout can mean the same when a core subscriber listens on the
      // subject but no stream stores it. Only the server can tell which.
      const code = (err as { code?: string }).code;
      const ambiguous = code === ErrorCode.NoResponders || code === ErrorCode.Timeout;
      if (ambiguous && (await this.noStreamFor(RESULT_SUBJECT))) {
        throw new ResultRefusedError(
          `no JetStream stream captures ${RESULT_SUBJECT} (is this a Conveyor server's NATS?)`,
          'no-stream',
        );
      }
      throw err;
    }
  }

  deadLetter(record: DeadLetterRecord): Promise<boolean> {
    return recordDeadLetter(record, {
      onDeadLetter: this.config.onDeadLetter,
      subject: this.config.deadLetterSubject,
      nc: this.nc,
      js: this.js,
      logger: this.logger,
    });
  }

  publishProgress(report: RunProgress): void {
    this.nc.publish(progressSubject(report.run_id, report.driver), encodeGoJson(report));
  }

  async flushRunLogs(runId: string, signal: AbortSignal): Promise<void> {
    // Most runs have every line stored by the time they end: no promise, no listener.
    if (!this.logs.hasUnflushed(runId) || signal.aborted) return;
    // flushRun has its own deadline (logs.flushTimeoutMs); the shutdown deadline cuts it shorter.
    await abortable(this.logs.flushRun(runId), signal, 0);
  }

  private async noStreamFor(subject: string): Promise<boolean> {
    try {
      this.jsm ??= this.nc.jetstreamManager();
      await (await this.jsm).streams.find(subject);
      return false;
    } catch (err) {
      // "no stream matches subject" is the answer; anything else (JetStream down) is not.
      this.jsm = undefined;
      return /no stream matches subject/i.test((err as Error).message);
    }
  }
}
