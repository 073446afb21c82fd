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
