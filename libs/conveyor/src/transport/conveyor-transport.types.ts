import type { SessionStatus } from './consumer-session';
import type { NatsLinkStatus } from './nats-link';

/**
 * Where the transport is in its life; `consuming` means the consumer is bound and pulled, and
 * `recovering` that the consumer session restarts after a failure (readiness says why).
 */
export type ConveyorTransportState =
  'idle' | 'connecting' | 'binding' | 'consuming' | 'recovering' | 'draining' | 'closed';

/** Whether the driver takes work, and why not. */
export interface ConveyorReadiness {
  ready: boolean;
  /** Why not ready, in words for a person (never a secret). */
  reason?: string;
  /**
   * Work left behind past its deadline and still going: a hung `onDeadLetter` or cleanup hook, a
   * handler ignoring its abort signal. Other events keep running, so it does not make the driver
   * unready; it says what to look at.
   */
  stuck?: string[];
}

/** Events `on()` accepts, with the callback each one gets (the NATS server, or the error text). */
export type ConveyorTransportEvents = {
  disconnect: (server: string) => void;
  reconnect: (server: string) => void;
  error: (error: string) => void;
};
export type ConveyorTransportEvent = keyof ConveyorTransportEvents;

/** The callbacks registered with the transport's `on()`. */
export class TransportListeners {
  private readonly byEvent = new Map<ConveyorTransportEvent, Set<(arg: string) => void>>();

  add(event: ConveyorTransportEvent, callback: (arg: string) => void): void {
    const set = this.byEvent.get(event) ?? new Set();
    set.add(callback);
    this.byEvent.set(event, set);
  }

  emit(event: ConveyorTransportEvent, arg: string): void {
    this.byEvent.get(event)?.forEach((cb) => cb(arg));
  }
}

/** Readiness from where the transport is: shutdown first, then NATS, then the consumer session. */
export function transportReadiness(now: {
  stopping: boolean;
  state: ConveyorTransportState;
  /** A connection was made (it may be down now). */
  connection: boolean;
  nats: NatsLinkStatus;
  session: SessionStatus;
}): ConveyorReadiness {
  const nats = (what: string) =>
    `${what} NATS ${now.nats.server}${now.nats.lastError ? `: ${now.nats.lastError}` : ''}`;
  if (now.stopping) return { ready: false, reason: 'shutting down' };
  if (now.state === 'idle') return { ready: false, reason: 'not started' };
  if (!now.connection || now.state === 'connecting') return { ready: false, reason: nats('connecting to') };
  if (!now.nats.connected) return { ready: false, reason: nats('disconnected from NATS, reconnecting to') };
  if (!now.session.pulling) return { ready: false, reason: now.session.reason ?? 'not pulling' };
  return { ready: true };
}
