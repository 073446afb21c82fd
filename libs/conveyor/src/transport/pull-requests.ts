import { Msg, NatsConnection, Subscription, createInbox, nanos } from 'nats';
import { MESSAGES_STREAM } from '../protocol';
import { NatsInboundMessage } from './nats-inbound.message';
import { abortable } from '../util/abortable';

/** How long one pull request stays open on the server. */
export const PULL_EXPIRES_MS = 10_000;
/** The server sends a heartbeat this often on an idle pull request, so a lost request shows quickly. */
export const PULL_HEARTBEAT_MS = 1000;
/** How soon a pull is asked again after the server answered that the consumer has no leader. */
const NO_LEADER_RETRY_MS = 250;
/** How long closing waits for the server to confirm the inbox is drained. */
const CLOSE_DRAIN_MS = 2000;
/** Missing heartbeats for this long means the server forgot our requests (leader change, restart). */
const STALE_AFTER_MS = 2.5 * PULL_HEARTBEAT_MS;

/** What the pull requester reports to its session. */
export interface PullEvents {
  /** A JetStream delivery arrived. */
  message(msg: NatsInboundMessage): void;
  /** The consumer is gone (the server said so): bind again. */
  consumerDeleted(): void;
  /** Something the server said that a person should see. */
  warn(text: string): void;
}

/**
 * Pull requests on one long-lived inbox: `pull(n)` asks for `n` more messages without waiting, so
 * a freed slot is refilled in one publish, several requests overlap, and nothing is re-subscribed
 * per fetch. It counts what is still owed (`outstanding`) from deliveries and the server's status
 * messages (408/409 carry `Nats-Pending-Messages`), and forgets it when the server must have: on a
 * reconnect, a leadership change, or when idle heartbeats stop.
 */
export class PullRequester {
  private readonly inbox = createInbox();
  private readonly subject: string;
  private readonly sub: Subscription;
  private watchdog?: NodeJS.Timeout;
  private owed = 0;
  private lastHeard = Date.now();
  private closing?: Promise<void>;

  constructor(
    private readonly nc: NatsConnection,
    consumer: string,
    private readonly events: PullEvents,
    /** Called when what is owed dropped without a delivery (the session may pull again). */
    private readonly onOwedDropped: () => void,
  ) {
    this.subject = `$JS.API.CONSUMER.MSG.NEXT.${MESSAGES_STREAM}.${consumer}`;
    this.sub = nc.subscribe(this.inbox, { callback: (err, msg) => err || this.receive(msg) });
    this.watch(STALE_AFTER_MS);
  }

  /** Messages requested and not yet delivered or released by the server. */
  get outstanding(): number {
    return this.owed;
  }

  /** Asks for `n` more messages. */
  pull(n: number): void {
    if (n <= 0) return;
    if (this.owed === 0) this.lastHeard = Date.now();
    this.owed += n;
    const request = { batch: n, expires: nanos(PULL_EXPIRES_MS), idle_heartbeat: nanos(PULL_HEARTBEAT_MS) };
    this.nc.publish(this.subject, JSON.stringify(request), { reply: this.inbox });
  }

  /** The server forgets pull requests of a dropped connection: nothing is owed any more. */
  forget(): void {
    this.owed = 0;
  }

  /**
   * Stops asking and listening. Deliveries the server sent before it heard the unsubscribe are
   * still on the wire: an unsubscribe would drop them, to come back only after AckWait. The inbox
   * is drained instead and each of them nak'd, so another replica gets it at once. Resolves once
   * the server confirmed (or the connection is gone).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.watchdog);
      this.owed = 0;
      if (this.nc.isClosed()) return;
      // A disconnected link cannot confirm the drain: past the bound, just stop listening.
      const drained = await abortable(this.sub.drain(), undefined, CLOSE_DRAIN_MS).catch(() => undefined);
      if (drained?.ended !== 'done') this.sub.unsubscribe();
    })();
    return this.closing;
  }

  private receive(msg: Msg): void {
    this.lastHeard = Date.now();
    if (this.closing) {
      if (NatsInboundMessage.isDelivery(msg)) new NatsInboundMessage(msg).nak();
      return;
    }
    if (NatsInboundMessage.isDelivery(msg)) {
      if (this.owed > 0) this.owed -= 1;
      this.events.message(new NatsInboundMessage(msg));
      return;
    }
    const code = msg.headers?.code ?? 0;
    const description = msg.headers?.description ?? '';
    if (code === 100) return; // idle heartbeat
    if (code === 503) {
      // No responders: the consumer has no leader (an election after its node died). The request
      // is gone; ask again shortly, not after the heartbeat watchdog's 2.5 s, so work resumes
      // as soon as a leader is elected.
      this.owed = 0;
      setTimeout(() => this.onOwedDropped(), NO_LEADER_RETRY_MS).unref();
      return;
    }
    if (code === 409 && /consumer deleted/i.test(description)) {
      this.owed = 0;
      this.events.consumerDeleted();
      return;
    }
    if (code === 404 || code === 408 || code === 409) {
      // The request ended; the header says how many of its messages will not come.
      const pending = Number(msg.headers?.get('Nats-Pending-Messages'));
      this.owed = Number.isFinite(pending) && pending > 0 ? Math.max(0, this.owed - pending) : 0;
      if (code === 409 && !/leadership change/i.test(description))
        this.events.warn(`pull request: ${code} ${description}`);
      this.onOwedDropped();
      return;
    }
    this.events.warn(`unexpected message on the pull inbox: ${code} ${description}`);
  }

  /**
   * Checks for lost heartbeats in `inMs`. A timeout set for the earliest moment they can be missed,
   * not a tick per heartbeat: an idle driver (its pull open, heartbeats arriving) wakes for it about
   * every two seconds, and a lost request is still noticed STALE_AFTER_MS after the last word.
   */
  private watch(inMs: number): void {
    this.watchdog = setTimeout(() => this.checkHeard(), inMs);
    this.watchdog.unref();
  }

  private checkHeard(): void {
    if (this.closing) return;
    const silentMs = Date.now() - this.lastHeard;
    if (this.owed > 0 && silentMs > STALE_AFTER_MS) {
      // Heartbeats stopped: the requests are gone (a restarted node, a lost route). Ask again.
      this.owed = 0;
      this.lastHeard = Date.now();
      // Re-armed whatever the session does with it: a one-shot watchdog that dies stays dead.
      try {
        this.onOwedDropped();
      } finally {
        this.watch(STALE_AFTER_MS);
      }
      return;
    }
    // Not stale yet: look again when it first can be. With nothing owed a period on is soon enough
    // (the next pull restarts the silence).
    this.watch(this.owed > 0 ? Math.max(1, STALE_AFTER_MS - silentMs + 1) : STALE_AFTER_MS);
  }
}
