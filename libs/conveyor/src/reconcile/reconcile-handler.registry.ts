import { MessageRoute, parseMessageSubject } from '../protocol';
import { ConveyorStartupError } from '../module/startup.error';
import type { MessageOutcome } from '../settlement/settlement.policy';
import type { ReconcileHandlerMeta } from './reconcile.decorator';

/** Thrown at startup when two handlers would both receive some (resource, event). */
export class DuplicateReconcileHandlerError extends ConveyorStartupError {
  constructor(a: ReconcileHandlerMeta, b: ReconcileHandlerMeta) {
    const shared = !a.events
      ? b.events
      : !b.events
        ? a.events
        : a.events.filter((e) => b.events!.includes(e));
    const events = shared ? `event(s) ${shared.map((e) => `"${e}"`).join(', ')}` : 'every event';
    super(
      `Duplicate @Reconcile handlers for resource "${a.resource}" and ${events}: ${a.handler} and ${b.handler}. ` +
        'Each (resource, event) must have exactly one handler; split them with distinct `events` lists.',
    );
  }
}

/** Where a message goes: a handler, "filtered out by events", or nowhere. */
export type HandlerLookup<T> =
  | { kind: 'handler'; meta: ReconcileHandlerMeta; handler: T }
  | { kind: 'event-filtered'; meta: ReconcileHandlerMeta }
  | { kind: 'none' };

/** Where a message goes: its handler, or the outcome that ends it without one. */
export type MessageRouting<T> =
  | { kind: 'handler'; meta: ReconcileHandlerMeta; handler: T; route: MessageRoute }
  | { kind: 'settle'; outcome: MessageOutcome & { kind: 'no-handler' | 'filtered' } };

/** The route table: (resource, event) → one handler. */
export class ReconcileHandlerRegistry<T> {
  private readonly byResource = new Map<string, { meta: ReconcileHandlerMeta; handler: T }[]>();

  /** @throws DuplicateReconcileHandlerError when the new handler overlaps an existing one. */
  add(meta: ReconcileHandlerMeta, handler: T): void {
    const list = this.byResource.get(meta.resource) ?? [];
    for (const existing of list) {
      const overlaps =
        !existing.meta.events || !meta.events || existing.meta.events.some((e) => meta.events!.includes(e));
      if (overlaps) throw new DuplicateReconcileHandlerError(existing.meta, meta);
    }
    list.push({ meta, handler });
    this.byResource.set(meta.resource, list);
  }

  lookup(resource: string, event: string): HandlerLookup<T> {
    const list = this.byResource.get(resource);
    if (!list) return { kind: 'none' };
    const match = list.find(({ meta }) => !meta.events || meta.events.includes(event));
    return match ? { kind: 'handler', ...match } : { kind: 'event-filtered', meta: list[0].meta };
  }

  /** Routes a message by its subject and event. */
  route(subject: string, event: string): MessageRouting<T> {
    const route = parseMessageSubject(subject);
    const lookup = route ? this.lookup(route.resource, event) : ({ kind: 'none' } as const);
    if (!route || lookup.kind === 'none')
      return { kind: 'settle', outcome: { kind: 'no-handler', subject, event } };
    if (lookup.kind === 'event-filtered') {
      const pipelineStep = route.kind === 'pipeline-step';
      return {
        kind: 'settle',
        outcome: { kind: 'filtered', handler: lookup.meta.handler, event, pipelineStep },
      };
    }
    return { kind: 'handler', meta: lookup.meta, handler: lookup.handler, route };
  }

  /** Every registered handler's metadata. */
  handlers(): ReconcileHandlerMeta[] {
    return [...this.byResource.values()].flat().map((entry) => entry.meta);
  }

  /** Resource types with at least one handler, sorted. */
  resources(): string[] {
    return [...this.byResource.keys()].sort();
  }

  get size(): number {
    return [...this.byResource.values()].reduce((n, list) => n + list.length, 0);
  }
}
