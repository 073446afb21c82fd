/**
 * ASCII written straight into a buffer, for frames made by the hundred thousand: a `buf.write`
 * of a short string costs more in the call (and in flattening the string) than its bytes do.
 * Each returns the offset after what it wrote; the caller has made the room.
 */

const ZERO = 0x30;

/** Digits of a non-negative integer. */
export function decimalLength(n: number): number {
  if (n < 10) return 1;
  if (n < 100) return 2;
  if (n < 1000) return 3;
  if (n < 10_000) return 4;
  if (n < 100_000) return 5;
  if (n < 1_000_000) return 6;
  if (n < 10_000_000) return 7;
  if (n < 100_000_000) return 8;
  if (n < 1_000_000_000) return 9;
  return String(n).length;
}

/** A non-negative integer in decimal. */
export function putDecimal(buf: Uint8Array, at: number, n: number): number {
  const end = at + decimalLength(n);
  let p = end;
  do {
    const next = Math.floor(n / 10);
    buf[--p] = ZERO + (n - next * 10);
    n = next;
  } while (n > 0);
  return end;
}

/** A non-negative integer in exactly `width` digits, zero-padded (higher digits cut off). */
export function putPadded(buf: Uint8Array, at: number, n: number, width: number): number {
  const end = at + width;
  for (let p = end; p > at;) {
    const next = Math.floor(n / 10);
    buf[--p] = ZERO + (n - next * 10);
    n = next;
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
