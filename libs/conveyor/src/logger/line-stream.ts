import { isAscii } from 'node:buffer';
import { Writable } from 'node:stream';
import { utf8Boundary } from './line-limits';

/** A line without a newline is flushed once it reaches this many bytes (bounded memory). */
const MAX_PENDING_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;
const CR = 0x0d;

/**
 * A `Writable` that splits what is written into lines (`\n` or `\r\n`) and calls `onLine` with each;
 * the last unterminated line is emitted at `end()`.
 *
 * Split on bytes, each line decoded on its own: `\n` never occurs inside a UTF-8 character, so a
 * character cut by a chunk boundary stays whole in the carried-over tail. A line taken out of a
 * decoded chunk with `split` would be a slice that keeps the whole 64 KiB chunk alive for as long
 * as a sink holds the line, far beyond what the byte budget counts for it.
 */
export function createLineStream(onLine: (line: string) => void): Writable {
  let pending: Buffer | undefined;
  const emit = (chunk: Buffer) => {
    const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = undefined;
    let start = 0;
    // Step output is mostly ASCII: checked once per chunk, its lines then decode as a plain copy.
    const encoding = isAscii(buf) ? 'latin1' : 'utf8';
    for (let nl = buf.indexOf(NEWLINE); nl >= 0; nl = buf.indexOf(NEWLINE, start)) {
      const end = nl > start && buf[nl - 1] === CR ? nl - 1 : nl;
      onLine(buf.toString(encoding, start, end));
      start = nl + 1;
    }
    let rest = buf.length - start;
    while (rest >= MAX_PENDING_BYTES) {
      // Not valid UTF-8 at all (no boundary in reach): cut where the limit is.
      const cut = utf8Boundary(buf, start + MAX_PENDING_BYTES);
      const end = cut > start ? cut : start + MAX_PENDING_BYTES;
      onLine(buf.toString('utf8', start, end));
      start = end;
      rest = buf.length - start;
    }
    // Copied: a view would keep the whole chunk alive.
    if (rest > 0) pending = Buffer.from(buf.subarray(start));
  };
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      emit(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      callback();
    },
    final(callback) {
      if (pending) onLine(pending.toString('utf8'));
      pending = undefined;
      callback();
    },
  });
}
