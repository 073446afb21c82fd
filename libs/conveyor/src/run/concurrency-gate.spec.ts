import { ConcurrencyGate } from './concurrency-gate';

describe('ConcurrencyGate', () => {
  it('hands out at most `limit` slots to concurrent takers, in turn as slots free up', async () => {
    const gate = new ConcurrencyGate(2);
    const signal = new AbortController().signal;
    let holding = 0;
    let peak = 0;
    const worker = async () => {
      expect(await gate.take(signal)).toBe(true);
      holding += 1;
      peak = Math.max(peak, holding);
      await new Promise((resolve) => setImmediate(resolve));
      holding -= 1;
      gate.release();
    };
    await Promise.all(Array.from({ length: 7 }, worker));
    expect(peak).toBe(2);
    expect(gate.free).toBe(2);
  });

  it('lets a waiting taker go empty-handed when its signal aborts', async () => {
    const gate = new ConcurrencyGate(1);
    const stop = new AbortController();
    expect(await gate.take(stop.signal)).toBe(true);
    const waiting = gate.take(stop.signal);
    stop.abort();
    expect(await waiting).toBe(false);
    expect(gate.inUse).toBe(1);
  });

  it('refuses to over-acquire', () => {
    const gate = new ConcurrencyGate(1);
    gate.acquire();
    expect(() => gate.acquire()).toThrow(/over limit 1/);
  });
});
