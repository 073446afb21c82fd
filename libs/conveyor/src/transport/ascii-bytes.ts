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

/** A non-negative integer in decimal. */
export function putDecimal(buf: Uint8Array, at: number, n: number): number {
  const end = at + decimalLength(n);
  let p = end;
  if (n < INT32_LIMIT) {
    let v = n | 0;
    do {
      const next = (v / 10) | 0;
      buf[--p] = ZERO + v - next * 10;
      v = next;
    } while (v > 0);
    return end;
  }
  do {
    const next = Math.floor(n / 10);
    buf[--p] = ZERO + (n - next * 10);
    n = next;
  } while (n > 0);
  return end;
}

/** A non-negative integer below 2^31 in exactly `width` digits, zero-padded (higher digits cut off). */
export function putPadded(buf: Uint8Array, at: number, n: number, width: number): number {
  const end = at + width;
  let v = n | 0;
  for (let p = end; p > at;) {
    const next = (v / 10) | 0;
    buf[--p] = ZERO + v - next * 10;
    v = next;
  }
  return end;
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
