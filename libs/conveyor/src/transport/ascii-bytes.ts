/**
 * ASCII written straight into a buffer, for frames made by the hundred thousand: a `buf.write`
 * of a short string costs more in the call (and in flattening the string) than its bytes do.
 * Each returns the offset after what it wrote; the caller has made the room.
 */

const ZERO = 0x30;

/**
 * Digits of a non-negative integer. A loop, not a chain of `if (n < 10 ** k)`: every comparison
 * runs on every call, so V8's optimised code never meets one without type feedback. The chain
 * deoptimised each frame writer that inlined it when a run's line numbers reached 1,000, 10,000
 * and 100,000, and TurboFan compiled them all again in the middle of the flood.
 */
export function decimalLength(n: number): number {
  if (n >= 1e15) return String(n).length;
  let digits = 1;
  for (let bound = 10; n >= bound; bound *= 10) digits += 1;
  return digits;
}

/** Below this, digits are split with 32-bit integer division: twice as fast as `Math.floor(n / 10)`. */
const INT32_LIMIT = 0x80000000;

/** `00` to `99`: digits go two at a time (a cold process runs this in the interpreter). */
const DIGIT_PAIRS = new Uint8Array(200);
for (let i = 0; i < 100; i++) {
  DIGIT_PAIRS[2 * i] = ZERO + Math.floor(i / 10);
  DIGIT_PAIRS[2 * i + 1] = ZERO + (i % 10);
}

/** The low `end - start` digits of `v` (below 2^31) into `buf[start, end)`, zero-padded. */
function putIntDigits(buf: Uint8Array, start: number, end: number, v: number): void {
  let p = end;
  while (p - start >= 2) {
    const next = (v / 100) | 0;
    const pair = (v - next * 100) << 1;
    buf[--p] = DIGIT_PAIRS[pair + 1];
    buf[--p] = DIGIT_PAIRS[pair];
    v = next;
  }
  if (p > start) buf[start] = ZERO + v - ((v / 10) | 0) * 10;
}

/** A non-negative integer in decimal. */
export function putDecimal(buf: Uint8Array, at: number, n: number): number {
  const end = at + decimalLength(n);
  if (n < INT32_LIMIT) {
    putIntDigits(buf, at, end, n | 0);
    return end;
  }
  let p = end;
  do {
    const next = Math.floor(n / 10);
    buf[--p] = ZERO + (n - next * 10);
    n = next;
  } while (n > 0);
  return end;
}

/** A non-negative integer below 2^31 in exactly `width` digits, zero-padded (higher digits cut off). */
export function putPadded(buf: Uint8Array, at: number, n: number, width: number): number {
  putIntDigits(buf, at, at + width, n | 0);
  return at + width;
}

/** Bytes copied in a loop below this length: `set` costs about 25 ns at any length, a loop 4 ns a byte. */
const SHORT_COPY = 8;

export function putBytes(buf: Uint8Array, at: number, bytes: Uint8Array): number {
  const n = bytes.length;
  if (n >= SHORT_COPY) buf.set(bytes, at);
  else for (let i = 0; i < n; i++) buf[at + i] = bytes[i];
  return at + n;
}

/** CR LF. */
export function putCrlf(buf: Uint8Array, at: number): number {
  buf[at] = 0x0d;
  buf[at + 1] = 0x0a;
  return at + 2;
}

/**
 * `src[start, end)` into `buf` at `at`; returns the offset after it. What `Buffer#copy` does
 * without its argument checks (the caller's offsets are its own), which a cold process runs
 * in the interpreter for every line.
 */
export function copyBytes(buf: Uint8Array, at: number, src: Uint8Array, start: number, end: number): number {
  buf.set(new Uint8Array(src.buffer, src.byteOffset + start, end - start), at);
  return at + end - start;
}

/** Node's own string writers on Buffer (what `buf.write(s, at, encoding)` calls after its checks). */
interface NativeStringWrites {
  latin1Write(text: string, at: number, length: number): number;
  utf8Write(text: string, at: number, length: number): number;
}

const nativeWrites = typeof (Buffer.prototype as Partial<NativeStringWrites>).latin1Write === 'function';

/**
 * `text` into `buf` at `at` (room made by the caller), as latin1 when `ascii` (a plain copy,
 * without UTF-8's checks) or else UTF-8; returns the bytes written.
 */
export function writeText(buf: Buffer, at: number, text: string, ascii: boolean): number {
  if (!nativeWrites) return buf.write(text, at, ascii ? 'latin1' : 'utf8');
  const native = buf as unknown as NativeStringWrites;
  return ascii ? native.latin1Write(text, at, buf.length - at) : native.utf8Write(text, at, buf.length - at);
}
