import { StringDecoder } from 'node:string_decoder';
import { Writable } from 'node:stream';

/** A line without a newline is flushed once it reaches this many characters (bounded memory). */
const MAX_PENDING_CHARS = 1024 * 1024;

/**
 * A `Writable` that splits what is written into lines (`\n` or `\r\n`) and calls `onLine` with each,
 * decoding UTF-8 across chunk boundaries; the last unterminated line is emitted at `end()`.
 */
export function createLineStream(onLine: (line: string) => void): Writable {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  const emit = (text: string) => {
    pending += text;
    const lines = pending.split(/\r?\n/);
    pending = lines.pop()!;
    lines.forEach(onLine);
    if (pending.length >= MAX_PENDING_CHARS) {
      onLine(pending);
      pending = '';
    }
  };
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      emit(typeof chunk === 'string' ? chunk : decoder.write(chunk));
      callback();
    },
    final(callback) {
      emit(decoder.end());
      if (pending) onLine(pending);
      pending = '';
      callback();
    },
  });
}
