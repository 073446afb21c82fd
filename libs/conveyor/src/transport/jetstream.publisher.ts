import { ErrorCode, Msg, MsgHdrs, NatsConnection, NatsError, Subscription, createInbox, headers } from 'nats';

/** What JetStream answers a stored publish with. */
export interface StoredAck {
  stream: string;
  seq: number;
  duplicate?: boolean;
}

/** Called once with the PubAck, or with the error. */
export type StoredCallback = (err: Error | undefined, ack?: StoredAck) => void;

interface Waiting {
  done: StoredCallback;
  deadline: number;
  /** What was sent, to send it again after a reconnect. */
  subject: string;
  data: Uint8Array;
  msgId: string;
  timeoutMs: number;
  /** When to send it again if still unanswered (with `resendAfterMs`). */
  resendAt: number;
}

const decoder = new TextDecoder();

/** How often unanswered publishes are checked against their deadline. */
const SWEEP_MS = 250;

/**
 * JetStream publishes that wait for their PubAck on one long-lived inbox. nats.js's `js.publish`
 * makes a request per message (a timer, a deferred, and a `Cancelled` error built for every answered
 * request: 5-9 % of a no-op run's CPU); here a publish is one plain publish with a reply subject,
 * and a single sweep times out what was not answered. Errors carry the codes nats.js uses, so
 * the publish-error classification reads them the same way.
 */
export class JetStreamPublisher {
  private readonly prefix = createInbox();
  private readonly sub: Subscription;
  private readonly waiting = new Map<number, Waiting>();
  private readonly sweeper: NodeJS.Timeout;
  private token = 0;
  private closed = false;
  /** False between a disconnect and the reconnect: a resend then would only fill nats.js's reconnect buffer. */
  private connected = true;
  private readonly resendAfterMs: number;

  /**
   * @param options.resendAfterMs send a publish again while it is unanswered this long (same
   *   `Nats-Msg-Id`, so it is stored once). A stream without a leader (an election on a cluster)
   *   drops publishes without an answer; resending finds the new leader within this time instead
   *   of after the full timeout. Default: only after a reconnect.
   */
  constructor(
    private readonly nc: NatsConnection,
    options: { resendAfterMs?: number } = {},
  ) {
    this.resendAfterMs = options.resendAfterMs ?? Infinity;
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (_err, msg) => this.answer(msg) });
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
    void this.resendAfterReconnects();
  }

  /** Publishes `data` with `Nats-Msg-Id: msgId` and resolves with the PubAck once it is stored. */
  publish(subject: string, data: Uint8Array, msgId: string, timeoutMs: number): Promise<StoredAck> {
    return new Promise<StoredAck>((resolve, reject) =>
      this.send(subject, data, msgId, timeoutMs, (err, ack) => (err ? reject(err) : resolve(ack!))),
    );
  }

  /**
   * {@link publish} with a callback: no promise per message, which matters at log-line rates (each
   * promise also runs the async-context hooks of AsyncLocalStorage).
   */
  send(subject: string, data: Uint8Array, msgId: string, timeoutMs: number, done: StoredCallback): void {
    const token = ++this.token;
    const now = Date.now();
    const waiting: Waiting = {
      done,
      deadline: now + timeoutMs,
      subject,
      data,
      msgId,
      timeoutMs,
      resendAt: now + this.resendAfterMs,
    };
    this.waiting.set(token, waiting);
    try {
      this.transmit(token, waiting);
    } catch (err) {
      // Closed connection, or a payload over max_payload (nats.js checks before sending).
      this.waiting.delete(token);
      done(err as Error);
    }
  }

  private transmit(token: number, w: Waiting): void {
    const h: MsgHdrs = headers();
    h.set('Nats-Msg-Id', w.msgId);
    this.nc.publish(w.subject, w.data, { reply: `${this.prefix}.${token}`, headers: h });
  }

  /**
   * What was written in the moment before a connection died is lost with it, and its PubAck never
   * comes: waiting for the timeout would stall every run holding such a result (5 s after a node
   * loss on a cluster). On a reconnect, what is still unanswered is sent again with a fresh
   * timeout; the same `Nats-Msg-Id` makes a copy that did arrive a duplicate the stream drops.
   */
  private async resendAfterReconnects(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (this.closed) return;
      if (status.type === 'disconnect') this.connected = false;
      if (status.type !== 'reconnect') continue;
      this.connected = true;
      const now = Date.now();
      for (const [token, w] of this.waiting) {
        w.deadline = now + w.timeoutMs;
        this.resend(token, w, now);
      }
    }
  }

  private resend(token: number, w: Waiting, now: number): void {
    w.resendAt = now + this.resendAfterMs;
    try {
      this.transmit(token, w);
    } catch {
      /* the connection dropped again: the next reconnect, or the sweep, settles it */
    }
  }

  /** Fails what is still waiting (the connection is closing). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    for (const [token, w] of this.waiting) {
      this.waiting.delete(token);
      w.done(NatsError.errorForCode(ErrorCode.ConnectionClosed));
    }
  }

  private answer(msg: Msg): void {
    const token = Number(msg.subject.slice(this.prefix.length + 1));
    const w = this.waiting.get(token);
    if (!w) return; // answered after its timeout: the caller already moved on
    this.waiting.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      // The server's no-responders status: nothing stored (no stream, or JetStream not ready).
      w.done(NatsError.errorForCode(ErrorCode.NoResponders));
      return;
    }
    try {
      const answer = JSON.parse(decoder.decode(msg.data)) as StoredAck & {
        error?: { code: number; err_code?: number; description: string };
      };
      if (answer.error) {
        const err = new NatsError(answer.error.description, String(answer.error.code));
        err.api_error = answer.error;
        w.done(err);
      } else w.done(undefined, answer);
    } catch (err) {
      w.done(err as Error);
    }
  }

  private sweep(): void {
    if (this.waiting.size === 0) return;
    const now = Date.now();
    for (const [token, w] of this.waiting) {
      if (w.deadline <= now) {
        this.waiting.delete(token);
        w.done(NatsError.errorForCode(ErrorCode.Timeout));
      } else if (w.resendAt <= now && this.connected) this.resend(token, w, now);
    }
  }
}
