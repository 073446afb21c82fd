import { abortable } from './abortable';

describe('abortable', () => {
  it('gives the value of work that ends first', async () => {
    await expect(abortable(Promise.resolve(7), undefined, 1000)).resolves.toEqual({
      ended: 'done',
      value: 7,
    });
  });

  it('stops waiting at the time limit, and a later rejection is not unhandled', async () => {
    let fail!: (err: Error) => void;
    const work = new Promise<never>((_resolve, reject) => (fail = reject));
    await expect(abortable(work, undefined, 20)).resolves.toEqual({ ended: 'timed-out' });
    fail(new Error('late'));
    await new Promise((resolve) => setImmediate(resolve));
  });

  it('stops waiting when the signal aborts, before or during the wait', async () => {
    const ctrl = new AbortController();
    const hung = new Promise<void>(() => undefined);
    const waiting = abortable(hung, ctrl.signal, 0);
    ctrl.abort();
    await expect(waiting).resolves.toEqual({ ended: 'aborted' });
    await expect(abortable(hung, ctrl.signal, 0)).resolves.toEqual({ ended: 'aborted' });
  });

  it('throws a rejection that comes first, and a synchronous throw of a function as one', async () => {
    await expect(abortable(Promise.reject(new Error('no')), undefined, 1000)).rejects.toThrow('no');
    await expect(
      abortable(
        () => {
          throw new Error('sync');
        },
        undefined,
        1000,
      ),
    ).rejects.toThrow('sync');
  });

  it('leaves no timer behind once the work ended', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await abortable(Promise.resolve(), undefined, 60_000);
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(before);
  });

  it('treats a bound above what a Node timer can hold as no bound (it would fire at once)', async () => {
    const bounded = abortable(
      new Promise((resolve) => setTimeout(() => resolve('late'), 30)),
      undefined,
      2 ** 32,
    );
    await expect(bounded).resolves.toEqual({ ended: 'done', value: 'late' });
  });
});
