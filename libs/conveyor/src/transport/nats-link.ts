import type { LoggerService } from '@nestjs/common';
import { NatsConnection, connect } from 'nats';
import type { ConveyorConfig } from '../module/conveyor.options';
import { backoffDelay, sleep } from '../util/backoff';
import { RECONNECT_WAIT_MS, handshakeTimeoutMs, natsConnectionOptions } from './nats-connection';
import { describeNatsFailure } from './nats-errors';
import { probeConnectFailure } from './tls-probe';

/** Failed attempts are all logged for this long, then at most once per this period. */
const EVERY_ATTEMPT_MS = 60_000;

/** What the link knows of NATS right now (readiness and `/health` show it). */
export interface NatsLinkStatus {
  connected: boolean;
  /** The server connected to or being tried, without credentials. */
  server: string;
  /** The last connection failure in plain words, until a connection succeeds. */
  lastError?: string;
}

/** Callbacks of {@link NatsLink.watch}. */
export interface NatsLinkEvents {
  disconnect(server: string): void;
  reconnect(server: string): void;
  error(error: string): void;
}

/**
 * Decides which failed attempts are logged: every one in the first minute of an outage, then one a
 * minute with the count of those left out, so a long outage neither floods the log nor goes quiet.
 */
export class AttemptLogSchedule {
  private since?: number;
  private lastLogged = 0;
  private skipped = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Whether to log this failure; `skipped` is how many were left out since the last logged one. */
  next(): { log: boolean; skipped: number } {
    const log = this.due;
    const now = this.now();
    this.since ??= now;
    if (!log) return { log, skipped: (this.skipped += 1) };
    const skipped = this.skipped;
    this.skipped = 0;
    this.lastLogged = now;
    return { log, skipped };
  }

  /** Whether the next failure would be logged (without counting it). */
  get due(): boolean {
    const now = this.now();
    return (
      this.since === undefined ||
      now - this.since < EVERY_ATTEMPT_MS ||
      now - this.lastLogged >= EVERY_ATTEMPT_MS
    );
  }

  /** Connected: the next failure starts a new outage. */
  reset(): void {
    this.since = undefined;
    this.skipped = 0;
  }
}

/**
 * The driver's link to NATS: dials until connected (logging failures plainly, on a decaying
 * schedule), follows the connection's status, and tells when nats.js closed it for good.
 */
export class NatsLink {
  private readonly schedule = new AttemptLogSchedule();
  private current: NatsLinkStatus;

  constructor(
    private readonly config: ConveyorConfig,
    private readonly logger: LoggerService,
  ) {
    this.current = { connected: false, server: this.serverList() };
  }

  get status(): NatsLinkStatus {
    return this.current;
  }

  /** Dials with backoff until connected or `signal` aborts (then `undefined`). */
  async connect(signal: AbortSignal): Promise<NatsConnection | undefined> {
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        const nc = await connect(natsConnectionOptions(this.config, attempt));
        this.connected(nc.getServer());
        this.logger.log(`connected to NATS ${this.redact(nc.getServer())}`);
        return nc;
      } catch (err) {
        const delay = backoffDelay(attempt, 500, 10_000);
        const cause = (await this.tlsCause(err)) ?? err;
        this.failed(this.serverList(), this.describe(cause, attempt), `attempt ${attempt}`, delay);
        await sleep(delay, signal);
      }
    }
    return undefined;
  }

  /**
   * Follows `nc`'s status until it closes. nats.js reports a failed reconnect only by the next
   * attempt (and an auth failure by its error code), so the cause of the others is probed.
   */
  async watch(nc: NatsConnection, on: NatsLinkEvents): Promise<void> {
    let reconnects = 0;
    let reported = false;
    for await (const status of nc.status()) {
      const server = this.redact(String(status.data));
      if (status.type === 'disconnect') {
        this.current = { ...this.current, connected: false, server };
        this.logger.warn(`disconnected from NATS ${server}`);
        on.disconnect(server);
      } else if (status.type === 'reconnecting') {
        if (reconnects > 0 && !reported) void this.reconnectFailed(String(status.data), reconnects);
        reconnects += 1;
        reported = false;
        this.current = { ...this.current, server };
      } else if (status.type === 'reconnect') {
        reconnects = 0;
        this.connected(String(status.data));
        this.logger.log(`reconnected to NATS ${server}`);
        on.reconnect(server);
      } else if (status.type === 'error') {
        const text = this.describe(status.data, reconnects);
        if (this.current.connected) this.logger.error(`NATS error: ${text}`);
        else this.failed(this.current.server, text, `reconnect attempt ${reconnects}`, RECONNECT_WAIT_MS);
        reported = true;
        this.current = { ...this.current, lastError: text };
        on.error(text);
      }
    }
  }

  /** Resolves when `nc` is closed, with why in words (nothing when we closed it). */
  async closed(nc: NatsConnection): Promise<string | undefined> {
    const err = await nc.closed();
    this.current = { ...this.current, connected: false };
    return err ? this.describe(err, 0) : undefined;
  }

  /**
   * A TIMEOUT says nothing: when it may be a TLS refusal nats.js could not see (a missing or
   * untrusted client certificate), ask the server directly.
   */
  private async tlsCause(err: unknown): Promise<Error | undefined> {
    if ((err as { code?: string })?.code !== 'TIMEOUT') return undefined;
    for (const server of this.config.servers) {
      const refusal = await probeConnectFailure(server, this.config.tls);
      if (refusal) return refusal;
    }
    return undefined;
  }

  /** A reconnect attempt failed without an error from the server: find out why, when it will be logged. */
  private async reconnectFailed(server: string, attempt: number): Promise<void> {
    const cause = this.schedule.due ? await probeConnectFailure(server, this.config.tls) : undefined;
    if (this.current.connected) return;
    const text = cause
      ? this.describe(cause, 0)
      : (this.current.lastError ?? 'no connection (the server is down, unreachable or stalls the handshake)');
    this.failed(this.redact(server), text, `reconnect attempt ${attempt}`, RECONNECT_WAIT_MS);
  }

  private connected(server: string): void {
    this.schedule.reset();
    this.current = { connected: true, server: this.redact(server) };
  }

  private failed(server: string, text: string, attempt: string, delayMs: number): void {
    this.current = { connected: false, server, lastError: text };
    const { log, skipped } = this.schedule.next();
    if (!log) return;
    const left = skipped > 0 ? ` (${skipped} failed attempt(s) not logged since the last line)` : '';
    this.logger.warn(
      `cannot connect to NATS ${server} (${attempt}): ${text}; next attempt in ${(delayMs / 1000).toFixed(1)} s${left}`,
    );
  }

  private describe(err: unknown, attempt: number): string {
    const text = describeNatsFailure(err, this.config);
    const timedOut = /no answer from the server in time/.test(text);
    return this.redact(timedOut && attempt > 0 ? `${text} after ${handshakeTimeoutMs(attempt)} ms` : text);
  }

  private serverList(): string {
    return this.config.servers.map((s) => this.redact(s)).join(', ');
  }

  private redact(text: string): string {
    return this.config.redactor.redact(text);
  }
}
