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

  constructor(private readonly nc: NatsConnection) {
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (_err, msg) => this.answer(msg) });
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
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
    const h: MsgHdrs = headers();
    h.set('Nats-Msg-Id', msgId);
    this.waiting.set(token, { done, deadline: Date.now() + timeoutMs });
    try {
      this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, headers: h });
    } catch (err) {
      // Closed connection, or a payload over max_payload (nats.js checks before sending).
      this.waiting.delete(token);
      done(err as Error);
    }
  }

  /** Fails what is still waiting (the connection is closing). */
  close(): void {
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
      }
    }
  }
}
