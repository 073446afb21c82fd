import type { ReconcileHandlerMeta } from '../reconcile/reconcile.decorator';
import { ConcurrencyGate } from './concurrency-gate';

/** Gives a slot back; calling it twice gives back one slot. */
export type SlotRelease = () => void;

const NOTHING_HELD: SlotRelease = () => undefined;

/**
 * The instance's `concurrency` run slots and each handler's own limit. A message takes its
 * handler's slot first and the instance slot second, so one waiting for a busy handler never sits
 * on an instance slot another handler could use.
 */
export class RunSlots {
  private readonly instance: ConcurrencyGate;
  private readonly perHandler = new Map<string, ConcurrencyGate>();

  constructor(
    readonly concurrency: number,
    /** Called whenever a run slot frees, so the consumer session can pull again. */
    private readonly onFree: () => void = () => undefined,
  ) {
    this.instance = new ConcurrencyGate(concurrency);
  }

  /** Free instance run slots. */
  get free(): number {
    return this.instance.free;
  }

  get inUse(): number {
    return this.instance.inUse;
  }

  /** Waits for the handler's own slot (none when it has no limit); undefined when `signal` aborts first. */
  async takeHandlerSlot(meta: ReconcileHandlerMeta, signal: AbortSignal): Promise<SlotRelease | undefined> {
    if (meta.concurrency === undefined) return NOTHING_HELD;
    let gate = this.perHandler.get(meta.handler);
    if (!gate) this.perHandler.set(meta.handler, (gate = new ConcurrencyGate(meta.concurrency)));
    return (await gate.take(signal)) ? once(() => gate.release()) : undefined;
  }

  /**
   * The handler's own slot, then an instance slot (`took` hears each); undefined, holding nothing,
   * when `signal` aborts first.
   */
  async takeBoth(
    meta: ReconcileHandlerMeta,
    signal: AbortSignal,
    took: (event: 'handler-slot-taken' | 'run-slot-taken') => void,
  ): Promise<SlotRelease | undefined> {
    const handlerSlot = await this.takeHandlerSlot(meta, signal);
    if (!handlerSlot) return undefined;
    took('handler-slot-taken');
    const runSlot = await this.takeRunSlot(signal);
    if (!runSlot) {
      handlerSlot();
      return undefined;
    }
    took('run-slot-taken');
    return () => {
      runSlot();
      handlerSlot();
    };
  }

  /** Waits for an instance slot; undefined when `signal` aborts first. */
  async takeRunSlot(signal: AbortSignal): Promise<SlotRelease | undefined> {
    if (!(await this.instance.take(signal))) return undefined;
    return once(() => {
      this.instance.release();
      this.onFree();
    });
  }
}

function once(release: () => void): SlotRelease {
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    release();
  };
}
