import type { SettlementKind } from '../settlement/settlement.policy';

/** What the transport reports as messages move; metrics subscribe with `strategy.observe()`. */
export interface RunObserver {
  /** A handler starts (after its slot and the stale-event check). */
  runStarted?(e: { resourceType: string; deliveryCount: number }): void;
  /** A handler's run was settled; `durationMs` from its start to its final verb. */
  runFinished?(e: { resourceType: string; outcome: SettlementKind; durationMs: number }): void;
  /** Any message got its final verb (runs included). */
  messageSettled?(e: { outcome: SettlementKind; action: 'ack' | 'nak' | 'term' }): void;
  /** Publishing a result failed once and is retried. */
  resultPublishRetried?(): void;
  /** Publishing a result failed: `transient` (retried) or why it can never be stored as it was. */
  resultPublishFailed?(e: { errorClass: string }): void;
  /** The consumer session stopped pulling for `reason` and restarts. */
  sessionRestarted?(e: { reason: string }): void;
  /** The NATS connection came back. */
  reconnected?(): void;
  /** A run entered a progress phase and/or left one (`ctx.progress(value, phase)`; undefined: none). */
  runPhaseChanged?(e: { from?: string; to?: string }): void;
  /** A cleanup hook threw or did not finish within its deadline. */
  cleanupFailed?(): void;
  /** A payload's `spec` failed its handler's generated validator (`rule`: the JSON Schema keyword). */
  specRejected?(e: { resourceType: string; rule: string }): void;
}

/** Fans one event out to every observer; an observer that throws never disturbs the transport. */
export class RunObservers implements Required<RunObserver> {
  private readonly list: RunObserver[] = [];

  add(observer: RunObserver): void {
    this.list.push(observer);
  }

  /**
   * True once an observer was added. The message path asks before it builds an event per message,
   * so a transport nobody observes allocates none.
   */
  get listening(): boolean {
    return this.list.length > 0;
  }

  private emit<K extends keyof RunObserver>(event: K, arg?: unknown): void {
    for (const observer of this.list) {
      try {
        (observer[event] as ((a: unknown) => void) | undefined)?.call(observer, arg);
      } catch {
        /* metrics must never break delivery */
      }
    }
  }

  runStarted(e: Parameters<Required<RunObserver>['runStarted']>[0]): void {
    this.emit('runStarted', e);
  }
  runFinished(e: Parameters<Required<RunObserver>['runFinished']>[0]): void {
    this.emit('runFinished', e);
  }
  messageSettled(e: Parameters<Required<RunObserver>['messageSettled']>[0]): void {
    this.emit('messageSettled', e);
  }
  resultPublishRetried(): void {
    this.emit('resultPublishRetried');
  }
  resultPublishFailed(e: Parameters<Required<RunObserver>['resultPublishFailed']>[0]): void {
    this.emit('resultPublishFailed', e);
  }
  sessionRestarted(e: Parameters<Required<RunObserver>['sessionRestarted']>[0]): void {
    this.emit('sessionRestarted', e);
  }
  reconnected(): void {
    this.emit('reconnected');
  }
  runPhaseChanged(e: Parameters<Required<RunObserver>['runPhaseChanged']>[0]): void {
    this.emit('runPhaseChanged', e);
  }
  cleanupFailed(): void {
    this.emit('cleanupFailed');
  }
  specRejected(e: Parameters<Required<RunObserver>['specRejected']>[0]): void {
    this.emit('specRejected', e);
  }
}
