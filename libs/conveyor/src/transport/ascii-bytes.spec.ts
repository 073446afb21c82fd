import { copyBytes, decimalLength, putDecimal, putPadded, writeText } from './ascii-bytes';

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

describe('bytes and text copied into a buffer', () => {
  it('copies a range of a pooled buffer (a view at an offset of its ArrayBuffer)', () => {
    const src = Buffer.from('..hello world..');
    expect(src.byteOffset).toBeGreaterThan(0); // from Node's pool: offsets must be its own
    const buf = Buffer.alloc(16, '#');
    expect(copyBytes(buf, 3, src, 2, 13)).toBe(14);
    expect(buf.toString('latin1')).toBe('###hello world##');
  });

  it('writes ASCII as latin1 and anything else as UTF-8, returning the bytes written', () => {
    const buf = Buffer.alloc(32, '#');
    expect(writeText(buf, 1, 'plain', true)).toBe(5);
    const text = 'é € 🚀';
    expect(writeText(buf, 6, text, false)).toBe(Buffer.byteLength(text));
    expect(buf.toString('utf8', 1, 6 + Buffer.byteLength(text))).toBe(`plain${text}`);
  });
});
