import { decimalLength, putDecimal, putPadded } from './ascii-bytes';

describe('decimal digits written as bytes', () => {
  const around = [0, 1, 9];
  for (let p = 10; p <= 1e17; p *= 10) around.push(p - 1, p, p + 1);
  around.push(Number.MAX_SAFE_INTEGER);

  it('counts the digits of every integer around each power of ten', () => {
    for (const n of around) expect([n, decimalLength(n)]).toEqual([n, String(n).length]);
  });

  it('writes the digits String() writes, ending where it says', () => {
    const buf = Buffer.alloc(40);
    for (const n of around) {
      const end = putDecimal(buf, 3, n);
      expect(buf.toString('latin1', 3, end)).toBe(String(n));
    }
  });

  it('zero-pads to a width', () => {
    const buf = Buffer.alloc(12);
    expect(buf.toString('latin1', 0, putPadded(buf, 0, 42, 9))).toBe('000000042');
  });
});
