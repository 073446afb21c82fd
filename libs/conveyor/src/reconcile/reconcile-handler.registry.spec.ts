import { DuplicateReconcileHandlerError, ReconcileHandlerRegistry } from './reconcile-handler.registry';

const meta = (handler: string, resource: string, events?: string[]) => ({ handler, resource, events });

describe('ReconcileHandlerRegistry', () => {
  it('routes by resource, then by event', () => {
    const registry = new ReconcileHandlerRegistry<string>();
    registry.add(meta('A.create', 'pipeline', ['create']), 'a');
    registry.add(meta('A.process', 'pipeline', ['process']), 'b');
    registry.add(meta('B.any', 'widget'), 'c');
    expect(registry.lookup('pipeline', 'create')).toMatchObject({ kind: 'handler', handler: 'a' });
    expect(registry.lookup('pipeline', 'process')).toMatchObject({ kind: 'handler', handler: 'b' });
    expect(registry.lookup('pipeline', 'delete')).toMatchObject({ kind: 'event-filtered' });
    expect(registry.lookup('widget', 'anything')).toMatchObject({ kind: 'handler', handler: 'c' });
    expect(registry.lookup('unknown', 'create')).toEqual({ kind: 'none' });
    expect(registry.resources()).toEqual(['pipeline', 'widget']);
    expect(registry.size).toBe(3);
  });

  it.each([
    [undefined, undefined, 'every event'],
    [['create'], undefined, 'event(s) "create"'],
    [undefined, ['process'], 'event(s) "process"'],
    [['create', 'process'], ['process', 'delete'], 'event(s) "process"'],
  ])('refuses overlapping handlers (%j vs %j)', (a, b, what) => {
    const registry = new ReconcileHandlerRegistry<string>();
    registry.add(meta('First.a', 'r', a), 'a');
    expect(() => registry.add(meta('Second.b', 'r', b), 'b')).toThrow(DuplicateReconcileHandlerError);
    expect(() => registry.add(meta('Second.b', 'r', b), 'b')).toThrow(
      `resource "r" and ${what}: First.a and Second.b`,
    );
  });
});
