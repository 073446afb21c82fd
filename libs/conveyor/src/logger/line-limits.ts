/** Replaces every secret (longest first, so one inside another is still hidden) with `***`. */
export function maskSecrets(line: string, secrets: readonly string[]): string {
  // Callers on the hot path pass a list sorted once; anything else is sorted here.
  if (secrets.some((s, i) => i > 0 && s.length > secrets[i - 1].length)) {
    secrets = [...secrets].sort((a, b) => b.length - a.length);
  }
  let out = line;
  for (const secret of secrets) if (secret && out.includes(secret)) out = out.split(secret).join('***');
  return out;
}

/** The largest offset <= `at` that does not fall inside a UTF-8 character (continuation bytes are 10xxxxxx). */
export function utf8Boundary(bytes: Buffer, at: number): number {
  let end = Math.min(at, bytes.length);
  while (end < bytes.length && end > 0 && (bytes[end] & 0xc0) === 0x80) end -= 1;
  return end;
}

/**
 * Cuts `line` into pieces of at most `maxBytes` UTF-8 bytes, never inside a character. With
 * `truncate`, keeps only the start and says how many bytes were cut.
 */
export function limitLine(line: string, maxBytes: number, mode: 'split' | 'truncate'): string[] {
  // A UTF-16 unit is at most 3 UTF-8 bytes: short lines (nearly all) need no encoding to know.
  if (line.length * 3 <= maxBytes) return [line];
  const bytes = Buffer.from(line, 'utf8');
  if (bytes.length <= maxBytes) return [line];
  if (mode === 'truncate') {
    const note = (cut: number) => ` …[truncated ${cut} bytes]`;
    const end = utf8Boundary(bytes, maxBytes - Buffer.byteLength(note(bytes.length)));
    return [bytes.subarray(0, end).toString('utf8') + note(bytes.length - end)];
  }
  const pieces: string[] = [];
  for (let start = 0; start < bytes.length;) {
    const end = utf8Boundary(bytes, start + maxBytes);
    pieces.push(bytes.subarray(start, end).toString('utf8'));
    start = end;
  }
  return pieces;
}
